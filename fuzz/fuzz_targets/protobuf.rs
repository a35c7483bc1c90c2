//! `.proto` texts as the registry takes them: the nesting checked first (`limits::brace_depth`,
//! as the registry does before the compiler runs), then compiled from memory. Nothing may panic
//! or overflow the stack.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshline_core::limits;
use protobuf_parse::pure::{ProtoPathResolver, ResolvedProtoFile};

struct One<'a>(&'a str);

impl std::fmt::Display for One<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fuzzed")
    }
}

impl ProtoPathResolver for One<'_> {
    fn resolve(
        &self,
        path: &protobuf_parse::ProtoPath,
    ) -> anyhow::Result<Option<ResolvedProtoFile>> {
        Ok((path.to_str() == "main.proto").then(|| ResolvedProtoFile {
            path: "main.proto".into(),
            content: self.0.as_bytes().to_vec(),
        }))
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if limits::check_nesting("the schema", limits::brace_depth(text)).is_err() {
        return;
    }
    let Ok(main) = protobuf_parse::ProtoPathBuf::new("main.proto".to_owned()) else {
        return;
    };
    let _ = protobuf_parse::pure::parse_and_typecheck_custom(&[main], One(text));
});
