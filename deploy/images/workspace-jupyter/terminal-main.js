// Jupyter's terminal page, for berth/workspace-jupyter. Debian's prebuilt
// terminal bundle (main.min.js) has its broken xterm.js inlined, so this
// file stands in for it: it loads the page's own modules one by one, with
// xterm.js and its fit addon from the bundles the image's build made.
require.config({
  paths: {
    xterm: "components/xterm.js/index",
    "xtermjs-fit": "components/xterm.js-fit/index"
  }
});
require(["terminal/js/main"]);
