// Validates AsyncAPI documents with the official parser (@asyncapi/parser): prints one JSON
// line per file, {"file", "errors": [...], "warnings": n, "channels": [...], "operations": [...]},
// and exits 1 when any document has an error-severity diagnostic.
// Usage: node validate_asyncapi.js FILE...   (run where node_modules holds the parser)
const fs = require("fs");
const { Parser } = require("@asyncapi/parser");

(async () => {
    const parser = new Parser();
    let failed = false;
    for (const file of process.argv.slice(2)) {
        const { document, diagnostics } = await parser.parse(fs.readFileSync(file, "utf8"));
        // Severity 0 is an error.
        const errors = diagnostics
            .filter((d) => d.severity === 0)
            .map((d) => `${d.code}: ${d.message} at ${JSON.stringify(d.path)}`);
        failed = failed || errors.length > 0 || !document;
        const out = { file, errors, warnings: diagnostics.length - errors.length };
        if (document) {
            out.version = document.version();
            out.channels = document.channels().all().map((c) => c.address());
            out.operations = document
                .operations()
                .all()
                .map((o) => `${o.action()} ${o.channels().all().map((c) => c.address()).join(",")}`);
            out.payload_types = document
                .messages()
                .all()
                .map((m) => (m.payload() ? m.payload().type() || null : null));
        }
        console.log(JSON.stringify(out));
    }
    process.exit(failed ? 1 : 0);
})().catch((e) => {
    console.error(e);
    process.exit(2);
});
