//! The getting-started program that the READMEs show is the example that
//! runs (`cargo run -p soiree-sql --example getting-started`) and the
//! soiree-sql crate page's doc test: one file, quoted verbatim.

const EXAMPLE: &str = include_str!("../../../crates/soiree-sql/examples/getting_started.rs");
const README: &str = include_str!("../../../README.md");
const SQL_README: &str = include_str!("../../../crates/soiree-sql/README.md");

/// The example without its `//!` header: the part the READMEs quote.
fn quoted_part() -> String {
    let code: Vec<&str> = EXAMPLE
        .lines()
        .skip_while(|line| line.starts_with("//!") || line.is_empty())
        .collect();
    format!("```rust\n{}\n```", code.join("\n"))
}

#[test]
fn the_readme_quotes_the_getting_started_example() {
    let quoted = quoted_part();
    assert!(quoted.contains("emit_in(&mut tx"), "{quoted}");
    assert!(
        README.contains(&quoted),
        "README.md's getting started differs from crates/soiree-sql/examples/getting_started.rs"
    );
}

#[test]
fn the_sql_readme_quotes_the_getting_started_example() {
    assert!(
        SQL_README.contains(&quoted_part()),
        "crates/soiree-sql/README.md's getting started differs from examples/getting_started.rs"
    );
}
