// npm install && npm run build: bundles entry.js with CodeMirror into one minified file.
import { build } from "esbuild";
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";

const out = "../../static/notifier/vendor/template-editor.js";
await build({
  entryPoints: ["entry.js"],
  bundle: true,
  minify: true,
  format: "iife",
  target: ["es2020"],
  legalComments: "none",
  outfile: out,
});
const versions = ["@codemirror/view", "@codemirror/state", "@codemirror/lang-html", "esbuild"]
  .map((name) => `${name} ${JSON.parse(readFileSync(`node_modules/${name}/package.json`)).version}`)
  .join(", ");
const header =
  `/* Notifier's template editor: CodeMirror 6 (MIT, see template-editor-LICENSE.txt), ` +
  `built by scripts/editor (${versions}). */\n`;
writeFileSync(out, header + readFileSync(out, "utf8"));

// The Ubuntu font MJML's emails ask for, served by the site itself: one stylesheet with the
// latin faces inlined as data: URLs, so even a sandboxed preview (an opaque origin, whose
// font requests would need CORS) shows it without a request elsewhere.
const fonts = "../../static/notifier/fonts";
const faces = [300, 400, 500, 700].map((weight) => {
  const file = `node_modules/@fontsource/ubuntu/files/ubuntu-latin-${weight}-normal.woff2`;
  const data = readFileSync(file).toString("base64");
  return (
    `@font-face{font-family:'Ubuntu';font-style:normal;font-display:swap;font-weight:${weight};` +
    `src:url(data:font/woff2;base64,${data}) format('woff2');` +
    `unicode-range:U+0000-00FF,U+0131,U+0152-0153,U+02BB-02BC,U+02C6,U+02DA,U+02DC,U+0304,` +
    `U+0308,U+0329,U+2000-206F,U+20AC,U+2122,U+2191,U+2193,U+2212,U+2215,U+FEFF,U+FFFD}`
  );
});
const fontVersion = JSON.parse(readFileSync("node_modules/@fontsource/ubuntu/package.json")).version;
mkdirSync(fonts, { recursive: true });
writeFileSync(
  `${fonts}/ubuntu.css`,
  `/* Ubuntu (latin; 300, 400, 500, 700) from @fontsource/ubuntu ${fontVersion}, under the ` +
    `Ubuntu Font Licence 1.0 (UBUNTU-FONT-LICENCE.txt). Built by scripts/editor. */\n` +
    faces.join("\n") +
    "\n",
);
copyFileSync("node_modules/@fontsource/ubuntu/LICENSE", `${fonts}/UBUNTU-FONT-LICENCE.txt`);
