/** Browser scripts: bundled as text (wrangler.toml `[[rules]]`), served byte for byte under /ui/assets. */
declare module "*.browser.js" {
  const source: string;
  export default source;
}
