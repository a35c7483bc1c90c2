//! The README and the pages under `docs/` as a reader uses them: every `meshline` command they
//! show parses with the binary's own argument parser, and every relative link leads to a file
//! (and a heading, when it names one) that exists.

use std::path::{Path, PathBuf};

use clap::Parser as _;
use meshline::cli::Cli;

/// README.md and every Markdown page under docs/.
fn pages() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut pages = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

/// The commands of a page's shell blocks (`console`, `sh`, `bash`, `shell`), continuation lines
/// joined, without the `$ ` prompt of console blocks.
fn commands(text: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let mut block: Option<&str> = None;
    let mut pending = String::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if let Some(fence) = trimmed.strip_prefix("```") {
            block = match block {
                Some(_) => None,
                None => Some(fence.trim()),
            };
            continue;
        }
        let Some(kind) = block else { continue };
        let command = match kind {
            "console" => match trimmed.strip_prefix("$ ") {
                Some(c) => c,
                None if !pending.is_empty() => trimmed,
                None => continue,
            },
            "sh" | "bash" | "shell" => trimmed,
            _ => continue,
        };
        let command = command.split(" #").next().unwrap_or_default();
        match command.strip_suffix('\\') {
            Some(head) => {
                pending.push_str(head);
                pending.push(' ');
            }
            None => {
                pending.push_str(command);
                commands.push(std::mem::take(&mut pending));
            }
        }
    }
    commands
}

/// Splits a command line as a POSIX shell does for words, quotes and backslashes (no
/// expansion); stops at `|`, `&&`, `;`, `&` and redirections.
fn words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                word.extend(chars.by_ref().take_while(|&c| c != '\''));
            }
            '"' => {
                in_word = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => word.extend(chars.next()),
                        c => word.push(c),
                    }
                }
            }
            '\\' => {
                in_word = true;
                word.extend(chars.next());
            }
            '|' | ';' | '&' | '>' | '<' => {
                // a file descriptor before a redirection is not a word
                if in_word && !word.chars().all(|c| c.is_ascii_digit()) {
                    words.push(word);
                }
                return words;
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// The arguments of a `meshline` command: `meshline …`, `cargo run [--release] -- …`.
fn meshline_args(words: &[String]) -> Option<Vec<String>> {
    match words {
        [program, rest @ ..] if program == "meshline" => Some(rest.to_vec()),
        [cargo, run, rest @ ..] if cargo == "cargo" && run == "run" => {
            let at = rest.iter().position(|w| w == "--")?;
            Some(rest[at + 1..].to_vec())
        }
        _ => None,
    }
}

#[test]
fn every_meshline_command_in_the_docs_parses() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        for command in commands(&text) {
            let Some(args) = meshline_args(&words(&command)) else {
                continue;
            };
            checked += 1;
            let parsed =
                Cli::try_parse_from(std::iter::once("meshline".to_owned()).chain(args.clone()));
            if let Err(e) = parsed {
                failures.push(format!("{}: `{command}`: {e}", page.display()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked >= 5, "only {checked} meshline commands found");
}

/// GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(text: &str) -> Vec<String> {
    let mut in_code = false;
    text.lines()
        .filter(|l| {
            if l.trim_start().starts_with("```") {
                in_code = !in_code;
            }
            !in_code && l.starts_with('#')
        })
        .map(|l| anchor(l.trim_start_matches('#')))
        .collect()
}

/// The relative link targets of a page: `[text](target)`, outside code.
fn links(text: &str) -> Vec<String> {
    let mut links = Vec::new();
    let mut in_code = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            rest = &rest[at + 2..];
            let Some(end) = rest.find(')') else { break };
            let target = &rest[..end];
            if !target.contains("://") && !target.starts_with("mailto:") {
                links.push(target.to_owned());
            }
            rest = &rest[end..];
        }
    }
    links
}

#[test]
fn every_relative_link_in_the_docs_resolves() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        for link in links(&text) {
            checked += 1;
            let (path, fragment) = link.split_once('#').unwrap_or((&link, ""));
            let target = if path.is_empty() {
                page.clone()
            } else {
                page.parent().unwrap().join(path)
            };
            if !target.exists() {
                failures.push(format!("{}: {link}: no such file", page.display()));
                continue;
            }
            if !fragment.is_empty() {
                let text = std::fs::read_to_string(&target).unwrap_or_default();
                if !anchors(&text).iter().any(|a| a == fragment) {
                    failures.push(format!("{}: {link}: no such heading", page.display()));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked >= 10, "only {checked} links found");
}

#[test]
fn shell_words_split_as_a_shell_does() {
    assert_eq!(
        words(r#"meshline produce a.b --file 'x y' --source "/p q" \  2>&1 | tee"#),
        ["meshline", "produce", "a.b", "--file", "x y", "--source", "/p q", " "]
    );
    assert_eq!(
        meshline_args(&words("cargo run --release -- up --demo")),
        Some(vec!["up".to_owned(), "--demo".to_owned()])
    );
}
