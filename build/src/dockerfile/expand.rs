//! Variable substitution as Docker applies it: to FROM (with the ARGs before the first
//! FROM), ARG defaults, ENV and LABEL keys and values, EXPOSE, VOLUME, USER, WORKDIR,
//! STOPSIGNAL, COPY/ADD sources, destination and `--from`/`--chown`/`--chmod`/
//! `--checksum`, and unquoted COPY heredoc bodies. RUN, CMD, ENTRYPOINT, SHELL,
//! HEALTHCHECK, MAINTAINER and ONBUILD are left as written (the shell, or a later
//! build, expands them).

use super::instructions::{ArgDecl, Copy, From, Instruction};
use super::shell::{process_word, process_words, Lookup, ShellError};

fn opt(v: &Option<String>, escape: char, env: &dyn Lookup) -> Result<Option<String>, ShellError> {
    v.as_deref()
        .map(|s| process_word(s, escape, env))
        .transpose()
}

fn pairs(
    v: &[(String, String)],
    escape: char,
    env: &dyn Lookup,
) -> Result<Vec<(String, String)>, ShellError> {
    v.iter()
        .map(|(k, v)| Ok((process_word(k, escape, env)?, process_word(v, escape, env)?)))
        .collect()
}

fn copy(c: &Copy, escape: char, env: &dyn Lookup) -> Result<Copy, ShellError> {
    let mut out = c.clone();
    out.sources = c
        .sources
        .iter()
        .map(|s| process_word(s, escape, env))
        .collect::<Result<_, _>>()?;
    out.dest = process_word(&c.dest, escape, env)?;
    out.from = opt(&c.from, escape, env)?;
    out.chown = opt(&c.chown, escape, env)?;
    out.chmod = opt(&c.chmod, escape, env)?;
    out.checksum = opt(&c.checksum, escape, env)?;
    for h in &mut out.heredocs {
        if h.expand {
            h.content = expand_heredoc(&h.content, env);
        }
    }
    Ok(out)
}

/// A heredoc body's `$name`, `${name}` and `${name:-word}`-style references, quotes left
/// as they are (they are file content, not words).
fn expand_heredoc(content: &str, env: &dyn Lookup) -> String {
    let mut out = String::new();
    let mut rest = content;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let len = if rest[1..].starts_with('{') {
            rest.find('}').map(|e| e + 1)
        } else {
            let n = rest[1..]
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len() - 1);
            (n > 0).then_some(n + 1)
        };
        match len.and_then(|l| process_word(&rest[..l], '\u{0}', env).ok().map(|v| (l, v))) {
            Some((l, v)) => {
                out.push_str(&v);
                rest = &rest[l..];
            }
            None => {
                out.push('$');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The instruction with its words substituted from `env`.
pub fn expand(
    ins: &Instruction,
    escape: char,
    env: &dyn Lookup,
) -> Result<Instruction, ShellError> {
    let w = |s: &str| process_word(s, escape, env);
    Ok(match ins {
        Instruction::From(f) => Instruction::From(From {
            image: w(&f.image)?,
            name: f.name.clone(),
            platform: opt(&f.platform, escape, env)?,
        }),
        Instruction::Arg(decls) => Instruction::Arg(
            decls
                .iter()
                .map(|d| {
                    Ok(ArgDecl {
                        name: d.name.clone(),
                        default: opt(&d.default, escape, env)?,
                    })
                })
                .collect::<Result<_, ShellError>>()?,
        ),
        Instruction::Env(p) => Instruction::Env(pairs(p, escape, env)?),
        Instruction::Label(p) => Instruction::Label(pairs(p, escape, env)?),
        Instruction::Expose(ports) => {
            let mut out = Vec::new();
            for p in ports {
                out.extend(process_words(p, escape, env)?);
            }
            Instruction::Expose(out)
        }
        Instruction::Volume(v) => {
            Instruction::Volume(v.iter().map(|s| w(s)).collect::<Result<_, _>>()?)
        }
        Instruction::User(s) => Instruction::User(w(s)?),
        Instruction::Workdir(s) => Instruction::Workdir(w(s)?),
        Instruction::Stopsignal(s) => Instruction::Stopsignal(w(s)?),
        Instruction::Copy(c) => Instruction::Copy(copy(c, escape, env)?),
        Instruction::Add(c) => Instruction::Add(copy(c, escape, env)?),
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dockerfile::instructions::parse;

    fn env() -> Vec<(String, String)> {
        vec![
            ("V".into(), "1.2".into()),
            ("DIR".into(), "/app".into()),
            ("U".into(), "app".into()),
            ("PORTS".into(), "80 443".into()),
        ]
    }

    fn ex(line: &str) -> Instruction {
        expand(&parse(line, &[], '\\').unwrap(), '\\', &env()).unwrap()
    }

    #[test]
    fn substituted_where_docker_substitutes() {
        assert_eq!(
            ex("FROM base:$V AS b"),
            Instruction::From(From {
                image: "base:1.2".into(),
                name: Some("b".into()),
                platform: None
            })
        );
        assert_eq!(
            ex("WORKDIR ${DIR}/src"),
            Instruction::Workdir("/app/src".into())
        );
        assert_eq!(
            ex("USER ${U}:${G:-users}"),
            Instruction::User("app:users".into())
        );
        assert_eq!(
            ex("ENV A=$V B=\"x $DIR\" C=${V:+set}"),
            Instruction::Env(vec![
                ("A".into(), "1.2".into()),
                ("B".into(), "x /app".into()),
                ("C".into(), "set".into())
            ])
        );
        assert_eq!(
            ex("ENV APP_VERSION \"1.0-dockerized-flask\""),
            Instruction::Env(vec![("APP_VERSION".into(), "1.0-dockerized-flask".into())])
        );
        assert_eq!(
            ex("LABEL \"com.x\"=\"v $V\" b='$V'"),
            Instruction::Label(vec![
                ("com.x".into(), "v 1.2".into()),
                ("b".into(), "$V".into())
            ])
        );
        assert_eq!(
            ex("EXPOSE $PORTS 8080/udp"),
            Instruction::Expose(vec!["80".into(), "443".into(), "8080/udp".into()])
        );
        assert_eq!(
            ex("VOLUME [\"$DIR/data\"]"),
            Instruction::Volume(vec!["/app/data".into()])
        );
        let Instruction::Copy(c) = ex("COPY --chown=$U:$U --from=s$V a$V $DIR/") else {
            panic!("not a COPY");
        };
        assert_eq!(c.chown.as_deref(), Some("app:app"));
        assert_eq!(c.from.as_deref(), Some("s1.2"));
        assert_eq!(c.sources, vec!["a1.2"]);
        assert_eq!(c.dest, "/app/");
        assert_eq!(
            ex("ARG X=$V"),
            Instruction::Arg(vec![ArgDecl {
                name: "X".into(),
                default: Some("1.2".into())
            }])
        );
    }

    #[test]
    fn left_alone_where_docker_leaves_it() {
        for line in [
            "RUN echo $V",
            "CMD echo $V",
            "ENTRYPOINT [\"echo\", \"$V\"]",
            "HEALTHCHECK CMD test $V",
            "ONBUILD RUN echo $V",
            "MAINTAINER $U",
            "SHELL [\"/bin/sh\", \"-c\"]",
        ] {
            let p = parse(line, &[], '\\').unwrap();
            assert_eq!(expand(&p, '\\', &env()).unwrap(), p, "{line}");
        }
    }

    #[test]
    fn heredoc_bodies() {
        assert_eq!(
            expand_heredoc("v=$V d=${DIR} n=${NO:-x} '$V' $ 5$", &env()),
            "v=1.2 d=/app n=x '1.2' $ 5$"
        );
    }
}
