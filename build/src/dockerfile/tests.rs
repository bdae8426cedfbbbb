use std::time::Duration;

use super::*;

fn p(text: &str) -> Dockerfile {
    parse("Dockerfile", text).unwrap()
}

fn err(text: &str) -> ParseError {
    parse("Dockerfile", text).unwrap_err()
}

fn only(text: &str) -> Instruction {
    let d = p(&format!("FROM scratch\n{text}\n"));
    assert_eq!(d.stages[0].steps.len(), 1, "{text}");
    d.stages[0].steps[0].instruction.clone()
}

#[test]
fn stages_meta_args_and_lines() {
    let d = p("# syntax=docker/dockerfile:1.7\nARG BASE=busybox\nARG V\n\nFROM ${BASE}:$V as Build\nRUN make \\\n  all\nfrom --platform=$BUILDPLATFORM scratch\ncopy --from=build /out /\n");
    assert_eq!(
        d.directives.syntax.as_deref(),
        Some("docker/dockerfile:1.7")
    );
    assert_eq!(d.meta_args.len(), 2);
    assert_eq!(d.meta_args[0].line, 2);
    assert_eq!(d.stages.len(), 2);
    assert_eq!(d.stages[0].name(), Some("build"));
    assert_eq!(d.stages[0].from().image, "${BASE}:$V");
    assert_eq!(d.stages[0].from.line, 5);
    let run = &d.stages[0].steps[0];
    assert_eq!((run.line, run.end_line), (6, 7));
    assert_eq!(run.text, "RUN make   all");
    assert_eq!(
        d.stages[1].from().platform.as_deref(),
        Some("$BUILDPLATFORM")
    );
    assert_eq!(d.stages[1].steps[0].instruction.keyword(), "COPY");
    assert_eq!(d.target(None).unwrap(), 1);
    assert_eq!(d.target(Some("BUILD")).unwrap(), 0);
    assert_eq!(
        d.target(Some("nope")).unwrap_err().to_string(),
        "failed to reach build target nope in Dockerfile"
    );
    assert_eq!(d.step_count(1), 2 + 2 + 2);
    assert_eq!(d.step_count(0), 2 + 2);
}

#[test]
fn run_forms() {
    assert_eq!(
        only("RUN echo hi && ls"),
        Instruction::Run(Run {
            command: CommandForm::Shell("echo hi && ls".into()),
            heredocs: vec![],
            mounts: vec![],
            network: None,
            security: None
        })
    );
    let Instruction::Run(r) = only("RUN [\"/bin/echo\", \"a b\"]") else {
        panic!()
    };
    assert_eq!(
        r.command,
        CommandForm::Exec(vec!["/bin/echo".into(), "a b".into()])
    );
    // Not valid JSON: the shell form, as written.
    let Instruction::Run(r) = only("RUN [ -f x ] && echo y") else {
        panic!()
    };
    assert_eq!(r.command, CommandForm::Shell("[ -f x ] && echo y".into()));
    let Instruction::Run(r) =
        only("RUN --mount=type=cache,target=/c --network=none --mount=type=tmpfs,target=/t true")
    else {
        panic!()
    };
    assert_eq!(r.mounts.len(), 2);
    assert_eq!(r.mounts[0].kind, MountType::Cache);
    assert_eq!(r.mounts[1].kind, MountType::Tmpfs);
    assert_eq!(r.network, Some(NetworkMode::None));
    assert_eq!(r.command, CommandForm::Shell("true".into()));
}

#[test]
fn run_heredocs() {
    let d = p("FROM scratch\nRUN <<EOF\nset -e\necho $HOME\nEOF\nRUN cat <<A >/x && cat <<-B\nline\nA\n\tother\n\tB\n");
    let Instruction::Run(r) = &d.stages[0].steps[0].instruction else {
        panic!()
    };
    assert_eq!(r.shell_script().unwrap(), "set -e\necho $HOME\n");
    let Instruction::Run(r) = &d.stages[0].steps[1].instruction else {
        panic!()
    };
    assert_eq!(
        r.shell_script().unwrap(),
        "cat <<A >/x && cat <<-B\nline\nA\nother\nB"
    );
    assert_eq!(d.stages[0].steps[1].line, 6);
    assert_eq!(d.stages[0].steps[1].end_line, 10);
}

#[test]
fn copy_and_add() {
    let Instruction::Copy(c) =
        only("COPY --from=build --chown=app:app --chmod=0755 --link a b* /dst/")
    else {
        panic!()
    };
    assert_eq!(c.sources, vec!["a", "b*"]);
    assert_eq!(c.dest, "/dst/");
    assert_eq!(c.from.as_deref(), Some("build"));
    assert_eq!(c.chown.as_deref(), Some("app:app"));
    assert_eq!(c.chmod.as_deref(), Some("0755"));
    assert!(c.link);
    let Instruction::Copy(c) = only("COPY [\"with space\", \"/d\"]") else {
        panic!()
    };
    assert_eq!(c.sources, vec!["with space"]);
    let Instruction::Add(a) = only("ADD --checksum=sha256:abc https://x/y.tgz /") else {
        panic!()
    };
    assert_eq!(a.checksum.as_deref(), Some("sha256:abc"));
    let d = p("FROM scratch\nCOPY <<one <<\"two\" /etc/\n1 $X\none\n2\ntwo\n");
    let Instruction::Copy(c) = &d.stages[0].steps[0].instruction else {
        panic!()
    };
    assert!(c.sources.is_empty());
    assert_eq!(c.heredocs.len(), 2);
    assert_eq!(c.heredocs[0].name, "one");
    assert_eq!(c.heredocs[0].content, "1 $X\n");
    assert!(!c.heredocs[1].expand);
}

#[test]
fn metadata_instructions() {
    assert_eq!(
        only("CMD [\"a\"]"),
        Instruction::Cmd(CommandForm::Exec(vec!["a".into()]))
    );
    assert_eq!(only("CMD []"), Instruction::Cmd(CommandForm::Exec(vec![])));
    assert_eq!(
        only("ENTRYPOINT exec top -b"),
        Instruction::Entrypoint(CommandForm::Shell("exec top -b".into()))
    );
    assert_eq!(
        only("ENV A=1 B=\"two words\" C=a\\ b"),
        Instruction::Env(vec![
            ("A".into(), "1".into()),
            ("B".into(), "\"two words\"".into()),
            ("C".into(), "a\\ b".into())
        ])
    );
    assert_eq!(
        only("ENV LEGACY  a value  here"),
        Instruction::Env(vec![("LEGACY".into(), "a value  here".into())])
    );
    assert_eq!(
        only("LABEL version=\"1.0\" maintainer=me"),
        Instruction::Label(vec![
            ("version".into(), "\"1.0\"".into()),
            ("maintainer".into(), "me".into())
        ])
    );
    assert_eq!(
        only("EXPOSE 80 443/udp"),
        Instruction::Expose(vec!["80".into(), "443/udp".into()])
    );
    assert_eq!(
        only("VOLUME /a /b"),
        Instruction::Volume(vec!["/a".into(), "/b".into()])
    );
    assert_eq!(
        only("VOLUME [\"/data\"]"),
        Instruction::Volume(vec!["/data".into()])
    );
    assert_eq!(only("USER app:app"), Instruction::User("app:app".into()));
    assert_eq!(only("WORKDIR /a b"), Instruction::Workdir("/a b".into()));
    assert_eq!(
        only("STOPSIGNAL SIGTERM"),
        Instruction::Stopsignal("SIGTERM".into())
    );
    assert_eq!(
        only("MAINTAINER Me <me@x>"),
        Instruction::Maintainer("Me <me@x>".into())
    );
    assert_eq!(
        only("SHELL [\"/bin/bash\", \"-c\"]"),
        Instruction::Shell(vec!["/bin/bash".into(), "-c".into()])
    );
    assert_eq!(
        only("ARG A B=2 C="),
        Instruction::Arg(vec![
            ArgDecl {
                name: "A".into(),
                default: None
            },
            ArgDecl {
                name: "B".into(),
                default: Some("2".into())
            },
            ArgDecl {
                name: "C".into(),
                default: Some("".into())
            },
        ])
    );
    let Instruction::Onbuild {
        expression,
        trigger,
    } = only("ONBUILD RUN echo hi")
    else {
        panic!()
    };
    assert_eq!(expression, "RUN echo hi");
    assert_eq!(trigger.keyword(), "RUN");
}

#[test]
fn healthcheck() {
    assert_eq!(
        only("HEALTHCHECK NONE"),
        Instruction::Healthcheck(Healthcheck::None)
    );
    assert_eq!(
        only("HEALTHCHECK --interval=1m30s --timeout=500ms --start-period=0 --retries=3 CMD [\"true\"]"),
        Instruction::Healthcheck(Healthcheck::Check {
            command: CommandForm::Exec(vec!["true".into()]),
            interval: Some(Duration::from_secs(90)),
            timeout: Some(Duration::from_millis(500)),
            start_period: None,
            start_interval: None,
            retries: Some(3),
        })
    );
    let Instruction::Healthcheck(Healthcheck::Check { command, .. }) =
        only("healthcheck cmd wget -q http://localhost/ || exit 1")
    else {
        panic!()
    };
    assert_eq!(
        command,
        CommandForm::Shell("wget -q http://localhost/ || exit 1".into())
    );
}

#[test]
fn escape_directive() {
    let d = p("# escape=`\nFROM scratch\nRUN dir c:\\ `\n  && echo\nCOPY a` b c:\\\n");
    assert_eq!(d.directives.escape, '`');
    let Instruction::Run(r) = &d.stages[0].steps[0].instruction else {
        panic!()
    };
    assert_eq!(r.command, CommandForm::Shell("dir c:\\   && echo".into()));
    assert_eq!(d.stages[0].steps[1].line, 5);
}

fn msg(text: &str) -> (usize, String) {
    match err(text) {
        ParseError::At { line, message, .. } => (line, message),
        other => panic!("{other}"),
    }
}

#[test]
fn errors_name_file_and_line() {
    let e = err("FROM scratch\nRUN true\nFOO bar\n");
    assert_eq!(
        e.to_string(),
        "failed to parse Dockerfile: dockerfile parse error line 3: unknown instruction: FOO"
    );
    assert_eq!(e.line(), Some(3));
    assert_eq!(
        parse("app.Dockerfile", "").unwrap_err().to_string(),
        "the Dockerfile (app.Dockerfile) cannot be empty"
    );
    assert_eq!(
        err("# only comments\n\n").to_string(),
        "the Dockerfile (Dockerfile) cannot be empty"
    );
    assert!(matches!(err("ARG A\n"), ParseError::NoStages { .. }));
    assert_eq!(
        msg("ARG A\nRUN true\nFROM x\n"),
        (2, "no build stage in current context".into())
    );
}

#[test]
fn instruction_errors() {
    let cases: &[(&str, &str)] = &[
        ("FROM", "FROM requires at least one argument"),
        ("FROM a b", "FROM requires either one or three arguments"),
        ("FROM a as 1x", "invalid name for build stage: \"1x\", name can't start with a number or contain symbols"),
        ("FROM --nope=1 a", "unknown flag: nope"),
        ("COPY a", "COPY requires at least two arguments, but only one was provided. Destination could not be determined"),
        ("COPY --from a b", "missing a value on flag: from"),
        ("COPY --checksum=x a b", "unknown flag: checksum"),
        ("ADD --link=maybe a b", "expecting boolean value for flag link, not: maybe"),
        ("ENV", "ENV requires at least one argument"),
        ("ENV A", "ENV must have two arguments"),
        ("ENV A=1 B", "Syntax error - can't find = in \"B\". Must be of the form: name=value"),
        ("ENV =1", "ENV names can not be blank"),
        ("LABEL", "LABEL requires at least one argument"),
        ("EXPOSE", "EXPOSE requires at least one argument"),
        ("USER", "USER requires exactly one argument"),
        ("WORKDIR", "WORKDIR requires exactly one argument"),
        ("VOLUME [\"\"]", "VOLUME specified can not be an empty string"),
        ("SHELL /bin/sh -c", "SHELL requires the arguments to be in JSON notation"),
        ("ONBUILD ONBUILD RUN x", "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
        ("ONBUILD FROM x", "FROM isn't allowed as an ONBUILD trigger"),
        ("ONBUILD BOGUS x", "unknown instruction: BOGUS"),
        ("HEALTHCHECK", "HEALTHCHECK requires at least one argument"),
        ("HEALTHCHECK NONE x", "HEALTHCHECK NONE takes no arguments"),
        ("HEALTHCHECK RUN x", "Unknown type \"RUN\" in HEALTHCHECK (try CMD)"),
        ("HEALTHCHECK CMD", "Missing command after HEALTHCHECK CMD"),
        ("HEALTHCHECK --interval=5 CMD x", "time: invalid duration \"5\""),
        ("HEALTHCHECK --interval=1ns CMD x", "Interval \"interval\" cannot be less than 1ms"),
        ("HEALTHCHECK --retries=-1 CMD x", "--retries cannot be negative (-1)"),
        ("RUN --network=bridge true", "unsupported network mode \"bridge\""),
        ("RUN --mount=type=cache true", "mount type cache requires a target"),
        ("CMD", "CMD requires at least one argument"),
        ("USER --x=1 a", "unknown flag: x"),
    ];
    for (line, want) in cases {
        assert_eq!(
            msg(&format!("FROM scratch\n{line}\n")),
            (2, want.to_string()),
            "{line}"
        );
    }
    assert_eq!(
        msg("FROM a AS x\nFROM b AS X\n"),
        (2, "duplicate stage name \"x\"".into())
    );
    assert_eq!(
        msg("FROM a\nRUN cat <<EOF\nno end\n"),
        (2, "unterminated heredoc \"EOF\"".into())
    );
}

#[test]
fn durations() {
    use instructions::parse_duration;
    assert_eq!(parse_duration("1h2m3s").unwrap(), Duration::from_secs(3723));
    assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
    assert_eq!(parse_duration("10us").unwrap(), Duration::from_micros(10));
    assert!(parse_duration("").is_err());
    assert!(parse_duration("s").is_err());
    assert!(parse_duration("5d").is_err());
}

#[test]
fn substitution_per_step() {
    let d = p("ARG TAG=1\nFROM busybox:${TAG}\nENV DIR=/srv\nWORKDIR $DIR/app\n");
    let env = vec![("TAG".to_string(), "2".to_string())];
    let from = expand::expand(&d.stages[0].from.instruction, '\\', &env).unwrap();
    let Instruction::From(f) = from else { panic!() };
    assert_eq!(f.image, "busybox:2");
    let env = vec![("DIR".to_string(), "/srv".to_string())];
    assert_eq!(
        expand::expand(&d.stages[0].steps[1].instruction, '\\', &env).unwrap(),
        Instruction::Workdir("/srv/app".into())
    );
}
