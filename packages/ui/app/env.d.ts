// Stylesheets are bundled by esbuild (build.mjs): importing one adds it to the app's CSS.
declare module "*.css"
