//! A private PostgreSQL server for the TLS tests: a new cluster (initdb)
//! in a temporary directory, on a free loopback port, with `ssl = on`, the
//! test's certificate, and TCP access only over TLS (`hostssl`; no
//! `hostnossl` line, so plain TCP is refused). Optionally it asks for a
//! client certificate of a given CA (`cert` authentication, the common
//! name as the role). Stopped (immediate shutdown) and removed on drop.
//!
//! The binaries come from Debian's postgresql package
//! (`/usr/lib/postgresql/VERSION/bin`), which the scripts install to run the
//! machine's own server. initdb refuses to run as root, so as root the
//! server runs as the `postgres` user, which owns the directory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;
use super::tls::{Ca, Dir, Issued};

/// The newest installed PostgreSQL's binaries.
fn bin_dir() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL installed under /usr/lib/postgresql (Debian's postgresql package)")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .expect("an initdb under /usr/lib/postgresql/*/bin")
}

/// Whom the server runs as: `postgres` when the tests run as root.
fn run_as() -> Option<(u32, u32)> {
    let id = |args: &[&str]| {
        let out = Command::new("id").args(args).output().ok()?;
        String::from_utf8(out.stdout)
            .ok()?
            .trim()
            .parse::<u32>()
            .ok()
    };
    if id(&["-u"])? != 0 {
        return None;
    }
    Some((id(&["-u", "postgres"])?, id(&["-g", "postgres"])?))
}

fn chown(path: &Path, owner: Option<(u32, u32)>) {
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown to postgres");
    }
}

fn command(program: PathBuf, owner: Option<(u32, u32)>) -> Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(program);
    if let Some((uid, gid)) = owner {
        cmd.uid(uid).gid(gid);
    }
    cmd
}

pub struct PgServer {
    pub port: u16,
    child: Child,
    log: PathBuf,
    // Dropped after the server stops (fields drop in order, after `drop`).
    _dir: Dir,
}

impl PgServer {
    /// A server presenting `cert` (issued by `ca`, sent behind it as the
    /// chain); with `client_ca`, only clients with a certificate of that CA
    /// get in.
    pub async fn start(cert: &Issued, ca: &Ca, client_ca: Option<&Ca>) -> PgServer {
        let owner = run_as();
        let dir = Dir::new("pg");
        chown(dir.path(), owner);
        let data = dir.path().join("data");
        let initdb = command(bin_dir().join("initdb"), owner)
            .args(["-D"])
            .arg(&data)
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"])
            .stdout(Stdio::null())
            .output()
            .expect("initdb runs");
        assert!(
            initdb.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&initdb.stderr)
        );
        let put = |name: &str, text: &str| {
            let path = data.join(name);
            std::fs::write(&path, text).expect("write into the data directory");
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
            chown(&path, owner);
        };
        put("server.crt", &format!("{}{}", cert.cert_pem, ca.cert_pem));
        put("server.key", &cert.key_pem);
        let port = free_port();
        let mut conf = format!(
            "port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n\
             fsync = off\nmax_connections = 20\nshared_buffers = 16MB\n",
            dir.path().display()
        );
        let method = match client_ca {
            Some(client_ca) => {
                put("root.crt", &client_ca.cert_pem);
                conf.push_str("ssl_ca_file = 'root.crt'\n");
                "cert"
            }
            None => "trust",
        };
        let mut existing =
            std::fs::read_to_string(data.join("postgresql.conf")).expect("postgresql.conf");
        existing.push_str(&conf);
        put("postgresql.conf", &existing);
        put(
            "pg_hba.conf",
            &format!("local all all trust\nhostssl all all 127.0.0.1/32 {method}\n"),
        );
        let log = dir.path().join("server.log");
        let child = command(bin_dir().join("postgres"), owner)
            .arg("-D")
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("the server log"))
            .spawn()
            .expect("postgres starts");
        let server = PgServer {
            port,
            child,
            log,
            _dir: dir,
        };
        server.wait_ready().await;
        server
    }

    /// Waits until the server accepts connections (its log says so).
    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            if log.contains("database system is ready to accept connections") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "PostgreSQL on port {} did not start within 30 s:\n{log}",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A URL of this server's `postgres` database as `user`, reached at
    /// `host`, with `params` (e.g. `sslmode=verify-full&sslrootcert=...`).
    pub fn url(&self, user: &str, host: &str, params: &str) -> String {
        format!("postgres://{user}@{host}:{}/postgres?{params}", self.port)
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        // SIGQUIT: immediate shutdown, the backends stop with the postmaster.
        let _ = Command::new("kill")
            .args(["-QUIT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
