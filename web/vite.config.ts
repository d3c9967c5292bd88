// The viewer's front-end is built into the Python package, which serves it at `/`.
// `npx vite` serves it with live reload, the API proxied to a running `tether view`
// (TETHER_VIEW_URL, default http://127.0.0.1:8765).
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  base: "./",
  server: {
    host: "127.0.0.1",
    proxy: { "/api": { target: process.env.TETHER_VIEW_URL ?? "http://127.0.0.1:8765", changeOrigin: false } },
  },
  build: {
    outDir: fileURLToPath(new URL("../src/tether/web/static", import.meta.url)),
    emptyOutDir: true,
    target: "es2022",
    sourcemap: false,
    reportCompressedSize: true,
  },
});
