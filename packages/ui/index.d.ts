/** The directory of the built web UI: `index.html` and `assets/` (built by `npm run build`). */
export declare const distDir: string
