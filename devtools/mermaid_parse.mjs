// Parse Mermaid diagrams with Mermaid's own parser, without a browser (jsdom stands in for
// the DOM that mermaid's sanitiser needs). Used by tests/test_pictures.py; `make mermaid`
// installs the two npm packages into build/mermaid.
//
// usage: node devtools/mermaid_parse.mjs MODULES_DIR < blocks.json   (a JSON list of strings)
// prints a JSON list of {ok, type} or {ok: false, error}, one per diagram.
import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const dir = process.argv[2] || process.cwd();
const require = createRequire(join(dir, "package.json"));
const { JSDOM } = require("jsdom");
const dom = new JSDOM("<!DOCTYPE html><body></body>");
globalThis.window = dom.window;
globalThis.document = dom.window.document;
const mermaidPath = join(dir, "node_modules", "mermaid", "dist", "mermaid.core.mjs");
const { default: mermaid } = await import(pathToFileURL(mermaidPath).href);
mermaid.initialize({ startOnLoad: false });

let input = "";
for await (const chunk of process.stdin) input += chunk;
const out = [];
for (const text of JSON.parse(input)) {
  try {
    const parsed = await mermaid.parse(text);
    out.push({ ok: true, type: parsed.diagramType });
  } catch (e) {
    out.push({ ok: false, error: String((e && e.message) || e).slice(0, 400) });
  }
}
console.log(JSON.stringify(out));
