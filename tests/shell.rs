//! `kvsim shell` driven through a real terminal (tmux): tab completion of tables and flags,
//! `use`, a command's output, an error that leaves the shell running, `exit`, and history kept
//! for the next session.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::process::{Server, create_table, free_base_port, wait_converged};

/// A tmux server of its own, so the test never touches the user's sessions.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux runs (CI installs it: apt-get install tmux)")
    }

    fn start(&self, command: &str) {
        let out = self.run(&[
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            "160",
            "-y",
            "50",
            command,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "t"];
        args.extend_from_slice(keys);
        let out = self.run(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "t"]).stdout).into_owned()
    }

    /// Waits until the screen shows `text`; returns the screen.
    fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "the shell never showed {text:?}; the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the session has ended.
    fn wait_ended(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.run(&["has-session", "-t", "t"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "the shell did not exit:\n{}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

fn shell_command(base: u16, history: &Path) -> String {
    format!(
        "{} shell --target-addr 127.0.0.1:{base} --history-file {}",
        env!("CARGO_BIN_EXE_kvsim"),
        history.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shell_completes_runs_commands_survives_errors_and_keeps_history() {
    let dir = tempfile::tempdir().expect("temp dir");
    let base = free_base_port();
    let mut server = Server::start(&dir.path().join("data"), base, &[]);
    let http = reqwest::Client::new();
    wait_converged(&http, base).await;
    create_table(&http, base, "Music", "Artist").await;
    let history = dir.path().join("history");
    let tmux = Tmux {
        socket: format!("kvsim-test-{}", std::process::id()),
    };

    tokio::task::spawn_blocking(move || {
        tmux.start(&shell_command(base, &history));
        tmux.wait_for("kvsim shell: `help` for help");
        // The prompt names the node and its role.
        tmux.wait_for("kvsim node1 ");
        // `use` with the table name completed by Tab.
        tmux.keys(&["use Mu", "Tab"]);
        tmux.wait_for("use Music");
        tmux.keys(&["Enter"]);
        tmux.wait_for("[Music]>");
        tmux.keys(&[
            "put-item --item-data '{\"Artist\":\"Queen\",\"Year\":1975}'",
            "Enter",
        ]);
        tmux.wait_for("Put Artist=\"Queen\" into Music (new item).");
        // A flag completed by Tab; the table comes from `use`.
        tmux.keys(&["get-item --partition-k", "Tab"]);
        tmux.wait_for("get-item --partition-key");
        tmux.keys(&["Queen", "Enter"]);
        tmux.wait_for("1975");
        // A line of PartiQL runs as `sql`, its quotes its own.
        tmux.keys(&[
            "UPDATE Music SET Note = 'it''s' WHERE Artist = 'Queen' RETURNING MODIFIED NEW *",
            "Enter",
        ]);
        tmux.wait_for("it's");
        // An error prints and the shell goes on.
        tmux.keys(&["describe-table --table-name Nope", "Enter"]);
        tmux.wait_for("error: ");
        tmux.keys(&["bogus", "Enter"]);
        tmux.wait_for("unrecognized subcommand 'bogus'");
        tmux.keys(&["list-tables", "Enter"]);
        let screen = tmux.wait_for("1 table");
        assert!(screen.contains("Music"), "{screen}");
        tmux.keys(&["exit", "Enter"]);
        tmux.wait_ended();

        // The next session remembers: Up recalls the last line before `exit`.
        let kept = std::fs::read_to_string(&history).expect("history file");
        assert!(kept.contains("use Music"), "{kept}");
        tmux.start(&shell_command(base, &history));
        tmux.wait_for("kvsim node1 ");
        tmux.keys(&["Up", "Up"]);
        tmux.wait_for("> list-tables");
        tmux.keys(&["C-u", "exit", "Enter"]);
        tmux.wait_ended();
    })
    .await
    .expect("shell test");
    server.kill();
}
