// Builds dist/: the console's own files plus the chart library copied out of node_modules
// (served by the gateway from the same origin: no CDN at run time).
import { cpSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "dist");
rmSync(dist, { recursive: true, force: true });
mkdirSync(join(dist, "vendor"), { recursive: true });
cpSync(join(here, "src"), dist, { recursive: true });
cpSync(
  join(here, "node_modules", "chart.js", "dist", "chart.umd.min.js"),
  join(dist, "vendor", "chart.umd.min.js"),
);
// Where a history's trace_id links to: the trace viewer of compose's observability profile
// unless SHOP_CONSOLE_TRACE_URL says otherwise ({trace_id} is replaced).
const traceUrl = process.env.SHOP_CONSOLE_TRACE_URL || "http://127.0.0.1:16686/trace/{trace_id}";
writeFileSync(
  join(dist, "config.js"),
  `window.SHOP_CONSOLE = ${JSON.stringify({ traceUrl })};\n`,
);
console.log(`console built in ${dist}`);
