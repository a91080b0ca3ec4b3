//! The mutations example as a test: a setting committed, the process
//! killed with SIGKILL before handling, the billing listener run exactly
//! once after the restart. The test binary is the example: it runs itself
//! as the example's child processes.

#[path = "../examples/mutations.rs"]
mod example;

fn main() {
    // A child process of the example: its role is in the environment.
    if std::env::var_os("SOIREE_MUTATIONS_ROLE").is_some() {
        if let Err(err) = example::main() {
            eprintln!("{err}");
            std::process::exit(1);
        }
        return;
    }
    if soiree_test::process::harness_question("mutations_example") {
        return;
    }
    println!("test mutations_example::billed_once_across_kill_9 ...");
    if let Err(err) = example::main() {
        panic!("the mutations example failed: {err}");
    }
    println!("test result: ok. 1 passed");
}
