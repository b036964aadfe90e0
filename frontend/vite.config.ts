import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// The SPA on its own origin, port 5173 (the course's), as the API's CORS default expects.
export default defineConfig({
  plugins: [react()],
  // @myideas/client is linked from ../clients/js, which has React of its own for its tests:
  // one React in the bundle, the app's.
  resolve: { dedupe: ["react", "react-dom"] },
  server: { port: 5173, strictPort: true },
  preview: { port: 5173, strictPort: true },
  build: { outDir: "dist", emptyOutDir: true },
});
