//! Typed instructions, parsed from one logical line each (arguments as written; variable
//! substitution happens per build step, see `expand.rs`).

use std::time::Duration;

use super::flags::{extract, Flags, Kind};
use super::lines::{raw_words, Heredoc};
use super::mounts::{parse_mount, RunMount};

/// The shell form (a string for the SHELL, `/bin/sh -c` by default) or the exec form (a
/// JSON array).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandForm {
    Shell(String),
    Exec(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct From {
    pub image: String,
    /// The `AS` name, lower-cased as Docker keeps it.
    pub name: Option<String>,
    pub platform: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDecl {
    pub name: String,
    pub default: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkMode {
    Default,
    None,
    Host,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub command: CommandForm,
    pub heredocs: Vec<Heredoc>,
    pub mounts: Vec<RunMount>,
    pub network: Option<NetworkMode>,
    /// `--security=insecure|sandbox`.
    pub security: Option<String>,
}

impl Run {
    /// The script a shell-form RUN hands to the shell: a lone heredoc (`RUN <<EOF`) is
    /// the script itself; otherwise the line followed by its heredoc bodies, as a shell
    /// reads them.
    pub fn shell_script(&self) -> Option<String> {
        let CommandForm::Shell(line) = &self.command else {
            return None;
        };
        if self.heredocs.len() == 1 {
            let h = &self.heredocs[0];
            let marker = line.trim();
            let bare = marker.trim_start_matches(|c: char| c.is_ascii_digit());
            if bare.starts_with("<<")
                && bare
                    .trim_start_matches("<<")
                    .trim_start_matches('-')
                    .trim_matches(['"', '\''])
                    == h.name
            {
                return Some(h.content.clone());
            }
        }
        let mut script = line.clone();
        for h in &self.heredocs {
            script.push('\n');
            script.push_str(&h.content);
            script.push_str(&h.name);
        }
        Some(script)
    }
}

/// COPY and ADD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    pub sources: Vec<String>,
    pub dest: String,
    /// COPY `--from=stage|image|index`.
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    /// ADD `--checksum=sha256:...`.
    pub checksum: Option<String>,
    /// ADD `--keep-git-dir`.
    pub keep_git_dir: bool,
    /// COPY `--parents`.
    pub parents: bool,
    pub exclude: Vec<String>,
    /// Sources given as heredocs (`COPY <<EOF /dst`): name and body.
    pub heredocs: Vec<Heredoc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Healthcheck {
    None,
    Check {
        command: CommandForm,
        interval: Option<Duration>,
        timeout: Option<Duration>,
        start_period: Option<Duration>,
        start_interval: Option<Duration>,
        retries: Option<u32>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    From(From),
    Arg(Vec<ArgDecl>),
    Run(Run),
    Cmd(CommandForm),
    Entrypoint(CommandForm),
    /// Key/value pairs as written (quotes still in), substituted per step.
    Label(Vec<(String, String)>),
    Maintainer(String),
    Expose(Vec<String>),
    Env(Vec<(String, String)>),
    Add(Copy),
    Copy(Copy),
    Volume(Vec<String>),
    User(String),
    Workdir(String),
    Onbuild {
        /// The trigger as written after ONBUILD, kept in the image's `OnBuild`.
        expression: String,
        trigger: Box<Instruction>,
    },
    Stopsignal(String),
    Healthcheck(Healthcheck),
    Shell(Vec<String>),
}

impl Instruction {
    /// The keyword in capitals.
    pub fn keyword(&self) -> &'static str {
        match self {
            Instruction::From(_) => "FROM",
            Instruction::Arg(_) => "ARG",
            Instruction::Run(_) => "RUN",
            Instruction::Cmd(_) => "CMD",
            Instruction::Entrypoint(_) => "ENTRYPOINT",
            Instruction::Label(_) => "LABEL",
            Instruction::Maintainer(_) => "MAINTAINER",
            Instruction::Expose(_) => "EXPOSE",
            Instruction::Env(_) => "ENV",
            Instruction::Add(_) => "ADD",
            Instruction::Copy(_) => "COPY",
            Instruction::Volume(_) => "VOLUME",
            Instruction::User(_) => "USER",
            Instruction::Workdir(_) => "WORKDIR",
            Instruction::Onbuild { .. } => "ONBUILD",
            Instruction::Stopsignal(_) => "STOPSIGNAL",
            Instruction::Healthcheck(_) => "HEALTHCHECK",
            Instruction::Shell(_) => "SHELL",
        }
    }
}

fn at_least_one(kw: &str) -> String {
    format!("{kw} requires at least one argument")
}

fn exactly_one(kw: &str) -> String {
    format!("{kw} requires exactly one argument")
}

/// A JSON array of strings, if the arguments are one.
fn json_array(rest: &str) -> Option<Vec<String>> {
    let t = rest.trim();
    if !t.starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(t).ok()
}

fn command_form(rest: &str) -> CommandForm {
    match json_array(rest) {
        Some(v) => CommandForm::Exec(v),
        None => CommandForm::Shell(rest.to_string()),
    }
}

fn json_or_fields(rest: &str) -> Vec<String> {
    json_array(rest).unwrap_or_else(|| rest.split_whitespace().map(str::to_string).collect())
}

/// ENV and LABEL: `key=value ...` or the legacy `key value`.
fn name_values(kw: &str, rest: &str, escape: char) -> Result<Vec<(String, String)>, String> {
    let words = raw_words(rest, escape);
    let Some(first) = words.first() else {
        return Err(at_least_one(kw));
    };
    if !first.contains('=') {
        let Some((key, value)) = rest.trim().split_once(char::is_whitespace) else {
            return Err(format!("{kw} must have two arguments"));
        };
        return Ok(vec![(key.to_string(), value.trim_start().to_string())]);
    }
    let mut out = Vec::new();
    for word in words {
        let Some((k, v)) = word.split_once('=') else {
            return Err(format!(
                "Syntax error - can't find = in {word:?}. Must be of the form: name=value"
            ));
        };
        if k.is_empty() {
            return Err(format!("{kw} names can not be blank"));
        }
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

/// A Go duration (`1m30s`, `500ms`, `0`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let err = || format!("time: invalid duration {s:?}");
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(err());
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(err)?;
        if n == 0 {
            return Err(err());
        }
        let value: f64 = rest[..n].parse().map_err(|_| err())?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..u] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(err()),
        };
        total += value * unit;
        rest = &rest[u..];
    }
    Ok(Duration::from_secs_f64(total))
}

fn health_duration(flags: &Flags, name: &str) -> Result<Option<Duration>, String> {
    let Some(v) = flags.string(name) else {
        return Ok(None);
    };
    if v.is_empty() {
        return Ok(None);
    }
    let d = parse_duration(&v)?;
    if d.is_zero() {
        return Ok(None);
    }
    if d < Duration::from_millis(1) {
        return Err(format!("Interval {name:?} cannot be less than 1ms"));
    }
    Ok(Some(d))
}

fn no_flags(flags: &[String]) -> Result<(), String> {
    Flags::parse(flags, &[]).map(|_| ())
}

/// Parses one logical line (keyword, flags, arguments and heredocs).
pub fn parse(text: &str, heredocs: &[Heredoc], escape: char) -> Result<Instruction, String> {
    let (keyword, args) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    let kw = keyword.to_ascii_uppercase();
    let (flag_words, rest) = extract(args, escape);
    let rest = rest.trim();
    let flags_of = |known: &[(&str, Kind)]| Flags::parse(&flag_words, known);
    Ok(match kw.as_str() {
        "FROM" => {
            let flags = flags_of(&[("platform", Kind::String)])?;
            let args: Vec<&str> = rest.split_whitespace().collect();
            let name = match args.len() {
                0 => return Err(at_least_one("FROM")),
                1 => None,
                3 if args[1].eq_ignore_ascii_case("as") => {
                    let name = args[2].to_ascii_lowercase();
                    let mut chars = name.chars();
                    let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase())
                        && chars.all(|c| {
                            c.is_ascii_lowercase()
                                || c.is_ascii_digit()
                                || matches!(c, '-' | '_' | '.')
                        });
                    if !valid {
                        return Err(format!(
                            "invalid name for build stage: {:?}, name can't start with a number or contain symbols",
                            args[2]
                        ));
                    }
                    Some(name)
                }
                _ => return Err("FROM requires either one or three arguments".into()),
            };
            Instruction::From(From {
                image: args[0].to_string(),
                name,
                platform: flags.string("platform"),
            })
        }
        "ARG" => {
            no_flags(&flag_words)?;
            let words = raw_words(rest, escape);
            if words.is_empty() {
                return Err(at_least_one("ARG"));
            }
            let mut decls = Vec::new();
            for w in words {
                let (name, default) = match w.split_once('=') {
                    Some((n, d)) => (n.to_string(), Some(d.to_string())),
                    None => (w.clone(), None),
                };
                if name.is_empty() {
                    return Err("ARG names can not be blank".into());
                }
                decls.push(ArgDecl { name, default });
            }
            Instruction::Arg(decls)
        }
        "RUN" => {
            let flags = flags_of(&[
                ("mount", Kind::Strings),
                ("network", Kind::String),
                ("security", Kind::String),
            ])?;
            if rest.is_empty() {
                return Err(at_least_one("RUN"));
            }
            let mounts = flags
                .strings("mount")
                .iter()
                .map(|m| parse_mount(m))
                .collect::<Result<Vec<_>, _>>()?;
            let network = match flags.string("network").as_deref() {
                None => None,
                Some("default") => Some(NetworkMode::Default),
                Some("none") => Some(NetworkMode::None),
                Some("host") => Some(NetworkMode::Host),
                Some(other) => return Err(format!("unsupported network mode {other:?}")),
            };
            let security = flags.string("security");
            if let Some(s) = &security {
                if s != "insecure" && s != "sandbox" {
                    return Err(format!("unsupported security mode {s:?}"));
                }
            }
            let command = if heredocs.is_empty() {
                command_form(rest)
            } else {
                CommandForm::Shell(rest.to_string())
            };
            Instruction::Run(Run {
                command,
                heredocs: heredocs.to_vec(),
                mounts,
                network,
                security,
            })
        }
        "CMD" | "ENTRYPOINT" => {
            no_flags(&flag_words)?;
            let form = command_form(rest);
            if form == CommandForm::Shell(String::new()) {
                return Err(at_least_one(&kw));
            }
            if kw == "CMD" {
                Instruction::Cmd(form)
            } else {
                Instruction::Entrypoint(form)
            }
        }
        "LABEL" => {
            no_flags(&flag_words)?;
            Instruction::Label(name_values("LABEL", rest, escape)?)
        }
        "ENV" => {
            no_flags(&flag_words)?;
            Instruction::Env(name_values("ENV", rest, escape)?)
        }
        "MAINTAINER" => {
            no_flags(&flag_words)?;
            if rest.is_empty() {
                return Err(exactly_one("MAINTAINER"));
            }
            Instruction::Maintainer(rest.to_string())
        }
        "EXPOSE" => {
            no_flags(&flag_words)?;
            let ports: Vec<String> = rest.split_whitespace().map(str::to_string).collect();
            if ports.is_empty() {
                return Err(at_least_one("EXPOSE"));
            }
            Instruction::Expose(ports)
        }
        "ADD" | "COPY" => {
            let known: &[(&str, Kind)] = if kw == "ADD" {
                &[
                    ("chown", Kind::String),
                    ("chmod", Kind::String),
                    ("link", Kind::Bool),
                    ("checksum", Kind::String),
                    ("keep-git-dir", Kind::Bool),
                    ("exclude", Kind::Strings),
                ]
            } else {
                &[
                    ("from", Kind::String),
                    ("chown", Kind::String),
                    ("chmod", Kind::String),
                    ("link", Kind::Bool),
                    ("parents", Kind::Bool),
                    ("exclude", Kind::Strings),
                ]
            };
            let flags = flags_of(known)?;
            let mut words = json_or_fields(rest);
            if words.len() < 2 {
                return Err(format!(
                    "{kw} requires at least two arguments, but only one was provided. Destination could not be determined"
                ));
            }
            let dest = words.pop().unwrap_or_default();
            // Heredoc markers name files whose content is the heredoc.
            let mut sources = Vec::new();
            let mut docs = Vec::new();
            for w in words {
                let bare = w.trim_start_matches(|c: char| c.is_ascii_digit());
                match bare.strip_prefix("<<").map(|n| {
                    n.trim_start_matches('-')
                        .trim_matches(['"', '\''])
                        .to_string()
                }) {
                    Some(name) if heredocs.iter().any(|h| h.name == name) => {
                        if let Some(h) = heredocs.iter().find(|h| h.name == name) {
                            docs.push(h.clone());
                        }
                    }
                    _ => sources.push(w),
                }
            }
            let copy = Copy {
                sources,
                dest,
                from: flags.string("from"),
                chown: flags.string("chown"),
                chmod: flags.string("chmod"),
                link: flags.bool("link"),
                checksum: flags.string("checksum"),
                keep_git_dir: flags.bool("keep-git-dir"),
                parents: flags.bool("parents"),
                exclude: flags.strings("exclude"),
                heredocs: docs,
            };
            if kw == "ADD" {
                Instruction::Add(copy)
            } else {
                Instruction::Copy(copy)
            }
        }
        "VOLUME" => {
            no_flags(&flag_words)?;
            let vols = json_or_fields(rest);
            if vols.is_empty() {
                return Err(at_least_one("VOLUME"));
            }
            if vols.iter().any(|v| v.trim().is_empty()) {
                return Err("VOLUME specified can not be an empty string".into());
            }
            Instruction::Volume(vols)
        }
        "USER" | "WORKDIR" | "STOPSIGNAL" => {
            no_flags(&flag_words)?;
            if rest.is_empty() {
                return Err(exactly_one(&kw));
            }
            let v = rest.to_string();
            match kw.as_str() {
                "USER" => Instruction::User(v),
                "WORKDIR" => Instruction::Workdir(v),
                _ => Instruction::Stopsignal(v),
            }
        }
        "ONBUILD" => {
            no_flags(&flag_words)?;
            if rest.is_empty() {
                return Err(at_least_one("ONBUILD"));
            }
            let inner_kw = rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_ascii_uppercase();
            match inner_kw.as_str() {
                "ONBUILD" => {
                    return Err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into())
                }
                "FROM" | "MAINTAINER" => {
                    return Err(format!("{inner_kw} isn't allowed as an ONBUILD trigger"))
                }
                _ => {}
            }
            let trigger = parse(rest, &[], escape)?;
            Instruction::Onbuild {
                expression: rest.to_string(),
                trigger: Box::new(trigger),
            }
        }
        "HEALTHCHECK" => {
            let flags = flags_of(&[
                ("interval", Kind::String),
                ("timeout", Kind::String),
                ("start-period", Kind::String),
                ("start-interval", Kind::String),
                ("retries", Kind::String),
            ])?;
            let (typ, cmd) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            match typ.to_ascii_uppercase().as_str() {
                "" => return Err(at_least_one("HEALTHCHECK")),
                "NONE" => {
                    if !cmd.trim().is_empty() {
                        return Err("HEALTHCHECK NONE takes no arguments".into());
                    }
                    Instruction::Healthcheck(Healthcheck::None)
                }
                "CMD" => {
                    let command = command_form(cmd.trim());
                    if command == CommandForm::Shell(String::new())
                        || command == CommandForm::Exec(Vec::new())
                    {
                        return Err("Missing command after HEALTHCHECK CMD".into());
                    }
                    let retries = match flags.string("retries") {
                        None => None,
                        Some(r) => {
                            let n: i64 = r
                                .parse()
                                .map_err(|_| format!("invalid --retries value {r:?}"))?;
                            if n < 0 {
                                return Err(format!("--retries cannot be negative ({n})"));
                            }
                            (n > 0).then_some(n as u32)
                        }
                    };
                    Instruction::Healthcheck(Healthcheck::Check {
                        command,
                        interval: health_duration(&flags, "interval")?,
                        timeout: health_duration(&flags, "timeout")?,
                        start_period: health_duration(&flags, "start-period")?,
                        start_interval: health_duration(&flags, "start-interval")?,
                        retries,
                    })
                }
                _ => return Err(format!("Unknown type {typ:?} in HEALTHCHECK (try CMD)")),
            }
        }
        "SHELL" => {
            no_flags(&flag_words)?;
            if rest.is_empty() {
                return Err(at_least_one("SHELL"));
            }
            match json_array(rest) {
                Some(v) if !v.is_empty() => Instruction::Shell(v),
                Some(_) => return Err(at_least_one("SHELL")),
                None => return Err("SHELL requires the arguments to be in JSON notation".into()),
            }
        }
        _ => return Err(format!("unknown instruction: {kw}")),
    })
}
