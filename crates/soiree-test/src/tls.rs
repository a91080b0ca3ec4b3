//! Certificates for TLS tests, made with the `openssl` command in a
//! temporary directory (removed on drop): a CA, a server certificate for
//! `127.0.0.1` and `localhost` signed by it, and another CA that did not
//! sign it.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A CA, a server certificate and key signed by it, and another CA.
#[derive(Debug)]
pub struct TestCerts {
    dir: PathBuf,
}

impl TestCerts {
    /// Generates them, or returns `None` after saying why when `openssl` is
    /// missing and `CI` is not `true`.
    ///
    /// # Panics
    ///
    /// When `openssl` fails, or is missing under `CI=true`.
    pub fn generate_or_skip(name: &str) -> Option<Self> {
        let dir = std::env::temp_dir().join(format!(
            "soiree-tls-{name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        ));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let certs = Self { dir };
        std::fs::write(
            certs.dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n\
             basicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature,keyEncipherment\n\
             extendedKeyUsage=serverAuth\n",
        )
        .expect("the extensions file");
        let steps: [&[&str]; 4] = [
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "1",
                "-subj",
                "/CN=soiree test ca",
            ],
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "other-ca.key",
                "-out",
                "other-ca.pem",
                "-days",
                "1",
                "-subj",
                "/CN=another ca",
            ],
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "1",
                "-extfile",
                "server.ext",
            ],
        ];
        for args in steps {
            match Command::new("openssl")
                .args(args)
                .current_dir(&certs.dir)
                .output()
            {
                Ok(out) if out.status.success() => {}
                Ok(out) => panic!(
                    "openssl {args:?} failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                ),
                Err(err) if !crate::redis::is_ci() => {
                    eprintln!("skipping: openssl is not available ({err})");
                    return None;
                }
                Err(err) => panic!("openssl: {err}"),
            }
        }
        Some(certs)
    }

    /// The CA that signed the server certificate (PEM).
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A CA that did not sign it (PEM).
    pub fn other_ca(&self) -> PathBuf {
        self.dir.join("other-ca.pem")
    }

    /// The server certificate (PEM).
    pub fn cert(&self) -> PathBuf {
        self.dir.join("server.pem")
    }

    /// The server's private key (PEM).
    pub fn key(&self) -> PathBuf {
        self.dir.join("server.key")
    }

    /// Makes the key readable by the PostgreSQL server alone, as it
    /// requires: mode 0600, owned by `postgres` when the tests run as root
    /// (the server then runs as that user).
    ///
    /// # Errors
    ///
    /// When the mode or owner cannot be set.
    pub fn key_for_postgres(&self) -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let key = self.key();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))?;
        let root = Command::new("id").arg("-u").output()?.stdout == b"0\n";
        if root {
            chown_postgres(&key)?;
        }
        Ok(())
    }
}

fn chown_postgres(path: &Path) -> io::Result<()> {
    let status = Command::new("chown").arg("postgres").arg(path).status()?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "chown postgres {} failed",
            path.display()
        )))
    }
}

impl Drop for TestCerts {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
