// Writes dist/: Swagger UI's own files from swagger-ui-dist plus our page and its settings.
// No bundler: swagger-ui-dist ships the browser bundle ready to serve.
import { cpSync, mkdirSync, rmSync } from "node:fs";

const ui = "node_modules/swagger-ui-dist";
const assets = [
  "swagger-ui.css",
  "swagger-ui-bundle.js",
  "swagger-ui-standalone-preset.js",
  "oauth2-redirect.html",
  "favicon-16x16.png",
  "favicon-32x32.png",
];

rmSync("dist", { recursive: true, force: true });
mkdirSync("dist");
for (const name of assets) cpSync(`${ui}/${name}`, `dist/${name}`);
cpSync("src", "dist", { recursive: true });
