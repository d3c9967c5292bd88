// Fails the build when the page's JavaScript is over its budget (150 KB gzipped, issue 15).
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";

const BUDGET = 150 * 1024;
const assets = new URL("../src/tether/web/static/assets/", import.meta.url);
let total = 0;
for (const file of readdirSync(assets)) {
  if (!file.endsWith(".js")) continue;
  total += gzipSync(readFileSync(join(assets.pathname, file)), { level: 9 }).length;
}
const kb = (total / 1024).toFixed(1);
if (total > BUDGET) {
  console.error(`JavaScript is ${kb} KB gzipped, over the 150 KB budget`);
  process.exit(1);
}
console.log(`JavaScript: ${kb} KB gzipped (budget 150 KB)`);
