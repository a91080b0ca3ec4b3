//! The command line: `--listen ADDR`, `--database URL` (or `DATABASE_URL`).

/// Where the service listens and what it stores in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The address to listen on (`127.0.0.1:0` picks a free port; the
    /// address is printed).
    pub listen: String,
    /// `sqlite://PATH` or `postgres://…`.
    pub database: String,
}

/// The default address: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:3000";

/// The default store: a SQLite file in the working directory.
pub const DEFAULT_DATABASE: &str = "sqlite://shop.db";

impl Config {
    /// Reads `--listen ADDR` and `--database URL` from `args` (without the
    /// program's name); the database defaults to `database_url` (the
    /// `DATABASE_URL` variable), then to [`DEFAULT_DATABASE`].
    ///
    /// # Errors
    ///
    /// An unknown option or one without its value, in words.
    ///
    /// # Examples
    ///
    /// ```
    /// use soiree_example_service::config::Config;
    ///
    /// let config = Config::parse(["--listen", "127.0.0.1:0"].map(String::from), None)?;
    /// assert_eq!(config.listen, "127.0.0.1:0");
    /// assert_eq!(config.database, "sqlite://shop.db");
    /// # Ok::<(), String>(())
    /// ```
    pub fn parse(
        args: impl IntoIterator<Item = String>,
        database_url: Option<String>,
    ) -> Result<Self, String> {
        let mut config = Self {
            listen: DEFAULT_LISTEN.to_owned(),
            database: database_url.unwrap_or_else(|| DEFAULT_DATABASE.to_owned()),
        };
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let slot = match arg.as_str() {
                "--listen" => &mut config.listen,
                "--database" => &mut config.database,
                other => {
                    return Err(format!(
                        "unknown option {other:?}: use --listen ADDR and --database URL"
                    ));
                }
            };
            *slot = args.next().ok_or_else(|| format!("{arg} needs a value"))?;
        }
        Ok(config)
    }
}
