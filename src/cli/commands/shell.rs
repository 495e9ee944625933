//! `kvsim shell`: an interactive console over the client commands (the gossip seed's console,
//! for kvsim).
//!
//! Every line is a client command without the `kvsim` prefix, with the same flags and output,
//! quoted as in a POSIX shell; `--target-addr` defaults to the shell's, and after `use TABLE`
//! to `--table-name` too. Line editing, history (kept between sessions) and tab completion of
//! commands, flags and table names come from `rustyline`. An error prints and the shell goes
//! on. The prompt names the node the shell talks to and its role.

use std::borrow::Cow;
use std::path::PathBuf;

use clap::{CommandFactory, Parser};
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::{DefaultHistory, History};
use rustyline::validate::Validator;
use rustyline::{Context, Editor, Helper};
use serde_json::{Value, json};

use crate::cli::client::{Client, parse_addr};
use crate::{Error, Result};

/// Arguments of `kvsim shell`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Node the shell's commands go to, HOST:PORT (each command may name another with its own
    /// --target-addr).
    #[arg(
        long,
        env = "KVSIM_TARGET_ADDR",
        default_value = "localhost:8100",
        value_parser = parse_addr
    )]
    pub target_addr: String,
    /// Where the history is kept between sessions (default: ~/.kvsim_history).
    #[arg(long)]
    pub history_file: Option<PathBuf>,
}

/// Words the shell itself understands, beside the client commands.
const SHELL_WORDS: [&str; 4] = ["use", "help", "exit", "quit"];

/// Commands that make no sense inside the shell.
const REFUSED: [&str; 2] = ["server", "shell"];

const HELP: &str = "\
Type a kvsim client command without the `kvsim` prefix, e.g.
  list-tables
  put-item --table-name Music --item-data '{\"Artist\":\"Queen\",\"SongTitle\":\"Innuendo\"}'
A line starting with SELECT, INSERT, UPDATE or DELETE runs as PartiQL (`sql`), e.g.
  SELECT * FROM \"Music\" WHERE Artist = 'Queen'
Shell commands:
  use TABLE       later commands default to --table-name TABLE (`use` alone: forget it)
  help [COMMAND]  this text, or a command's help
  exit, quit      leave (Ctrl+D too)
Tab completes commands, flags and table names; history is kept between sessions.";

/// Completion of commands, flags and table names.
struct ShellHelper {
    /// Client subcommand names.
    commands: Vec<String>,
    /// Tables known at the last refresh.
    tables: Vec<String>,
}

impl ShellHelper {
    /// The long flags of `command`, `--` included.
    fn flags(command: &str) -> Vec<String> {
        crate::cli::Args::command()
            .find_subcommand(command)
            .map(|c| {
                c.get_arguments()
                    .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Completer for ShellHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = &line[..pos];
        // After the last whitespace character, whatever its width in bytes.
        let start = before
            .char_indices()
            .rev()
            .find(|(_, c)| c.is_whitespace())
            .map_or(0, |(i, c)| i + c.len_utf8());
        let word = &before[start..];
        let earlier: Vec<&str> = before[..start].split_whitespace().collect();
        let choices: Vec<String> = match earlier.as_slice() {
            [] => self
                .commands
                .iter()
                .cloned()
                .chain(SHELL_WORDS.iter().map(|w| w.to_string()))
                .collect(),
            ["use"] => self.tables.clone(),
            [.., "--table-name"] => self.tables.clone(),
            ["help"] => self.commands.clone(),
            [command, ..] if word.starts_with('-') => ShellHelper::flags(command),
            _ => Vec::new(),
        };
        let mut found: Vec<Pair> = choices
            .into_iter()
            .filter(|c| c.starts_with(word))
            .map(|c| Pair {
                display: c.clone(),
                replacement: format!("{c} "),
            })
            .collect();
        found.sort_by(|a, b| a.display.cmp(&b.display));
        Ok((start, found))
    }
}

impl Hinter for ShellHelper {
    type Hint = String;
}

impl Highlighter for ShellHelper {
    fn highlight_prompt<'b, 's: 'b, 'p: 'b>(
        &'s self,
        prompt: &'p str,
        _default: bool,
    ) -> Cow<'b, str> {
        Cow::Borrowed(prompt)
    }
}

impl Validator for ShellHelper {}

impl Helper for ShellHelper {}

/// What a line asks for.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// Nothing (blank).
    Nothing,
    /// Leave.
    Exit,
    /// Default --table-name from now on (`None`: stop).
    Use(Option<String>),
    /// Print the shell's help, or a command's.
    Help(Option<String>),
    /// Run a client command with these arguments (after `kvsim`).
    Run(Vec<String>),
}

/// The first words of a line that runs as a PartiQL statement.
const PARTIQL_KEYWORDS: [&str; 4] = ["SELECT", "INSERT", "UPDATE", "DELETE"];

/// Reads one line.
///
/// # Errors
/// An unbalanced quote, or a shell command used wrongly.
fn parse_line(line: &str) -> Result<Line> {
    // PartiQL is passed whole: its quotes are its own, not the shell's.
    // The first run of letters, unless a client command's name goes on (`delete-item`).
    let trimmed = line.trim_start();
    let first: String = trimmed
        .chars()
        .take_while(char::is_ascii_alphabetic)
        .collect();
    let command_name = trimmed[first.len()..].starts_with(['-', '_']);
    if !command_name
        && PARTIQL_KEYWORDS
            .iter()
            .any(|k| first.eq_ignore_ascii_case(k))
    {
        return Ok(Line::Run(vec!["sql".into(), line.trim().to_string()]));
    }
    let words = shlex::split(line)
        .ok_or_else(|| Error::validation("unbalanced quotes or a trailing backslash"))?;
    Ok(match words.as_slice() {
        [] => Line::Nothing,
        [w] if w == "exit" || w == "quit" => Line::Exit,
        [w, ..] if w == "exit" || w == "quit" => {
            return Err(Error::validation(format!("{w} takes no arguments")));
        }
        [w] if w == "use" => Line::Use(None),
        [w, table] if w == "use" => Line::Use(Some(table.clone())),
        [w, ..] if w == "use" => {
            return Err(Error::validation(
                "usage: use TABLE (or `use` alone to forget it)",
            ));
        }
        [w] if w == "help" => Line::Help(None),
        [w, command] if w == "help" => Line::Help(Some(command.clone())),
        [w, ..] if w == "help" => return Err(Error::validation("usage: help [COMMAND]")),
        _ => Line::Run(words),
    })
}

/// The full argument list for `words`: the shell's target and table added where the command
/// takes them and the line did not give them.
fn with_defaults(words: Vec<String>, target: &str, table: Option<&str>) -> Vec<String> {
    let flags = ShellHelper::flags(&words[0]);
    let given = |flag: &str| {
        words
            .iter()
            .any(|w| w == flag || w.starts_with(&format!("{flag}=")))
    };
    let mut args = vec!["kvsim".to_string()];
    let wants_target = flags.iter().any(|f| f == "--target-addr") && !given("--target-addr");
    let wants_table = flags.iter().any(|f| f == "--table-name") && !given("--table-name");
    args.extend(words);
    if wants_target {
        args.extend(["--target-addr".to_string(), target.to_string()]);
    }
    if let (true, Some(table)) = (wants_table, table) {
        args.extend(["--table-name".to_string(), table.to_string()]);
    }
    args
}

/// The shell's view of the cluster, for its prompt and completions.
struct Cluster {
    runtime: tokio::runtime::Runtime,
    client: Client,
    target: String,
}

impl Cluster {
    /// `node2 leader`, `node1 follower`, or the address when the node does not answer.
    fn describe(&self) -> String {
        match self.runtime.block_on(self.client.status(&self.target)) {
            Ok(s) => format!(
                "node{} {}",
                s["node_id"].as_u64().unwrap_or(0),
                s["role"].as_str().unwrap_or("?")
            ),
            Err(_) => format!("{} unreachable", self.target),
        }
    }

    /// Table names, or none when the cluster does not answer.
    fn tables(&self) -> Vec<String> {
        let answer: Result<Value> = self
            .runtime
            .block_on(self.client.call("ListTables", &json!({})));
        answer
            .ok()
            .and_then(|v| {
                v["TableNames"].as_array().map(|names| {
                    names
                        .iter()
                        .filter_map(|n| n.as_str().map(str::to_string))
                        .collect()
                })
            })
            .unwrap_or_default()
    }
}

/// Runs the shell until `exit` or end of input.
///
/// # Errors
/// Only if the terminal cannot be used; command errors print and the shell goes on.
pub fn run(args: Args) -> Result<i32> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::internal(format!("cannot start the async runtime: {e}")))?;
    let cluster = Cluster {
        runtime,
        client: Client::new(&args.target_addr, false)?,
        target: args.target_addr.clone(),
    };
    let commands: Vec<String> = crate::cli::Args::command()
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .filter(|n| !REFUSED.contains(&n.as_str()))
        .collect();
    let mut editor: Editor<ShellHelper, DefaultHistory> =
        Editor::new().map_err(|e| Error::internal(format!("cannot use the terminal: {e}")))?;
    editor.set_helper(Some(ShellHelper {
        commands,
        tables: cluster.tables(),
    }));
    let history = args
        .history_file
        .clone()
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".kvsim_history")));
    if let Some(path) = &history {
        // A first session has no history yet.
        let _ = editor.load_history(path);
    }
    println!("kvsim shell: `help` for help, `exit` to leave.");
    let mut table: Option<String> = None;
    loop {
        let prompt = match &table {
            Some(t) => format!("kvsim {} [{t}]> ", cluster.describe()),
            None => format!("kvsim {}> ", cluster.describe()),
        };
        let line = match editor.readline(&prompt) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(Error::internal(format!("cannot read the terminal: {e}"))),
        };
        if !line.trim().is_empty() {
            let _ = editor.add_history_entry(line.as_str());
            if let Some(path) = &history
                && let Err(e) = editor.history_mut().save(path)
            {
                eprintln!("warning: history not saved to {}: {e}", path.display());
            }
        }
        match parse_line(&line) {
            Err(e) => eprintln!("error: {e}"),
            Ok(Line::Nothing) => {}
            Ok(Line::Exit) => break,
            Ok(Line::Use(t)) => {
                match &t {
                    Some(t) if !cluster.tables().contains(t) => {
                        eprintln!("warning: no table {t} yet; using it anyway");
                    }
                    _ => {}
                }
                table = t;
            }
            Ok(Line::Help(None)) => println!("{HELP}"),
            Ok(Line::Help(Some(command))) => {
                run_words(vec![command, "--help".into()], &cluster.target, None);
            }
            Ok(Line::Run(words)) => {
                run_words(words, &cluster.target, table.as_deref());
                if let Some(helper) = editor.helper_mut() {
                    helper.tables = cluster.tables();
                }
            }
        }
    }
    Ok(0)
}

/// Parses and runs one client command, printing what goes wrong.
fn run_words(words: Vec<String>, target: &str, table: Option<&str>) {
    let argv = with_defaults(words, target, table);
    match crate::cli::Args::try_parse_from(&argv) {
        Ok(args) if !args.runs_in_shell() => {
            eprintln!("error: `server` and `shell` cannot run inside the shell");
        }
        Ok(args) => {
            if let Err(e) = crate::cli::run(args) {
                eprintln!("error: {e}");
            }
        }
        Err(e) if !e.use_stderr() => print!("{}", e.render()),
        Err(e) => eprintln!("{}", crate::cli::one_line_usage_error(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partiql_lines_run_whole_as_sql() {
        match parse_line("SELECT*FROM T") {
            Ok(Line::Run(words)) => assert_eq!(words, vec!["sql", "SELECT*FROM T"]),
            _ => panic!("not run as sql"),
        }
        match parse_line("  select * FROM \"T\" WHERE a = 'it''s' ") {
            Ok(Line::Run(words)) => assert_eq!(
                words,
                vec![
                    "sql".to_string(),
                    "select * FROM \"T\" WHERE a = 'it''s'".to_string()
                ]
            ),
            _ => panic!("not run as sql"),
        }
        // A client command whose name starts like a keyword is still that command.
        match parse_line("delete-item --table-name T") {
            Ok(Line::Run(words)) => assert_eq!(words[0], "delete-item"),
            _ => panic!("not a client command"),
        }
    }

    #[test]
    fn lines_parse_into_shell_commands_and_client_commands() {
        assert_eq!(parse_line("   ").ok(), Some(Line::Nothing));
        assert_eq!(parse_line("exit").ok(), Some(Line::Exit));
        assert_eq!(
            parse_line("use Music").ok(),
            Some(Line::Use(Some("Music".into())))
        );
        assert_eq!(parse_line("use").ok(), Some(Line::Use(None)));
        assert!(parse_line("use a b").is_err());
        assert!(parse_line("put-item --item-data '{\"a\":1}").is_err());
        assert_eq!(
            parse_line("put-item --item-data '{\"a\": 1}'").ok(),
            Some(Line::Run(vec![
                "put-item".into(),
                "--item-data".into(),
                "{\"a\": 1}".into()
            ]))
        );
    }

    #[test]
    fn completion_handles_any_whitespace_and_offers_tables_flags_and_commands() {
        let helper = ShellHelper {
            commands: vec!["put-item".into(), "scan".into()],
            tables: vec!["Music".into(), "Movies".into()],
        };
        let history = DefaultHistory::new();
        let ctx = Context::new(&history);
        let complete = |line: &str| {
            let (start, found) = helper.complete(line, line.len(), &ctx).expect("completes");
            let words: Vec<String> = found.into_iter().map(|p| p.display).collect();
            (start, words)
        };
        assert_eq!(
            complete("use M"),
            (4, vec!["Movies".into(), "Music".into()])
        );
        // A non-breaking space is two bytes: the word starts after it, no panic.
        assert_eq!(complete("use\u{a0}Mus"), (5, vec!["Music".into()]));
        assert_eq!(complete("sc"), (0, vec!["scan".into()]));
        let (_, flags) = complete("scan --table-n");
        assert_eq!(flags, vec!["--table-name".to_string()]);
        assert_eq!(complete("scan --table-name M").1.len(), 2);
    }

    #[test]
    fn the_shells_target_and_table_fill_in_what_a_line_leaves_out() {
        let args = with_defaults(vec!["scan".into()], "127.0.0.1:9000", Some("Music"));
        assert_eq!(
            args,
            [
                "kvsim",
                "scan",
                "--target-addr",
                "127.0.0.1:9000",
                "--table-name",
                "Music"
            ]
        );
        // Given flags win; commands without --table-name get none.
        let args = with_defaults(
            vec!["scan".into(), "--table-name=Other".into()],
            "h:1",
            Some("Music"),
        );
        assert_eq!(
            args,
            [
                "kvsim",
                "scan",
                "--table-name=Other",
                "--target-addr",
                "h:1"
            ]
        );
        let args = with_defaults(vec!["list-tables".into()], "h:1", Some("Music"));
        assert_eq!(args, ["kvsim", "list-tables", "--target-addr", "h:1"]);
    }
}
