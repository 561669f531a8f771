//! The README's Rust code blocks are exactly the blocks of `examples/readme.rs`, which
//! `cargo test` compiles: so every Rust block a reader copies from the README compiles.

const README: &str = include_str!("../README.md");
const EXAMPLE: &str = include_str!("../examples/readme.rs");

/// The fenced blocks of `markdown` whose info string is `rust`.
fn readme_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in markdown.lines() {
        match current.as_mut() {
            None if line.trim_start() == "```rust" => current = Some(Vec::new()),
            None => {}
            Some(block) if line.trim_start() == "```" => {
                blocks.push(block.join("\n"));
                current = None;
            }
            Some(block) => block.push(line),
        }
    }
    assert!(current.is_none(), "an unclosed ```rust block in the README");
    blocks
}

/// The regions of the example between `// README: begin` and `// README: end`.
fn example_blocks(source: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in source.lines() {
        match (line.trim(), current.as_mut()) {
            ("// README: begin", None) => current = Some(Vec::new()),
            ("// README: end", Some(block)) => {
                blocks.push(block.join("\n"));
                current = None;
            }
            (_, Some(block)) => block.push(line),
            _ => {}
        }
    }
    assert!(
        current.is_none(),
        "an unclosed README region in examples/readme.rs"
    );
    blocks
}

#[test]
fn every_rust_block_of_the_readme_is_compiled_by_the_readme_example() {
    let readme = readme_blocks(README);
    let example = example_blocks(EXAMPLE);
    assert!(!readme.is_empty(), "the README shows no Rust code");
    for (i, (shown, compiled)) in readme.iter().zip(&example).enumerate() {
        assert_eq!(
            shown,
            compiled,
            "README Rust block {} differs from region {} of examples/readme.rs",
            i + 1,
            i + 1
        );
    }
    assert_eq!(
        readme.len(),
        example.len(),
        "the README has {} Rust blocks, examples/readme.rs {} regions",
        readme.len(),
        example.len()
    );
}

#[test]
fn the_parsers_find_blocks_and_regions() {
    let md = "text\n```rust\nlet a = 1;\n```\n```toml\nx = 1\n```\n```rust\nb\nc\n```\n";
    assert_eq!(readme_blocks(md), ["let a = 1;", "b\nc"]);
    let rs = "x\n// README: begin\nfn a() {}\n// README: end\n// README: begin\n// README: end\n";
    assert_eq!(example_blocks(rs), ["fn a() {}", ""]);
}
