// The no-kernel level mixer. One sprite sheet holds every mix: row i, column j
// is the image decoded from the first level's codes of image i and the second
// level's codes of image j; one more row holds the originals. Each row of
// thumbnail buttons picks the image for its level; the result shows the tile.
function t2iLevelMixer(root) {
  var spec = JSON.parse(root.querySelector(".lm-spec").textContent);
  var w = spec.tile[0], h = spec.tile[1], pick = spec.start.slice(), loaded = false;
  var result = root.querySelector(".lm-result"), caption = root.querySelector(".lm-caption");
  var buttons = root.querySelectorAll(".lm-pick"), sheet = new Image();
  function words() {
    var a = pick[0] + 1, b = pick[1] + 1, l = spec.levels;
    return a === b ? l[0] + " and " + l[1] + " codes of image " + a + ": its plain reconstruction"
                   : l[0] + " codes of image " + a + " + " + l[1] + " codes of image " + b;
  }
  function tile(canvas, row, column) {
    var c = canvas.getContext("2d");
    c.imageSmoothingEnabled = false;
    c.clearRect(0, 0, canvas.width, canvas.height);
    c.drawImage(sheet, column * w, row * h, w, h, 0, 0, canvas.width, canvas.height);
  }
  function show() {
    buttons.forEach(function (b) {  // the page's style outlines pressed buttons
      var on = +b.getAttribute("data-index") === pick[+b.getAttribute("data-level")];
      b.setAttribute("aria-pressed", on ? "true" : "false");
    });
    var text = words();
    caption.textContent = text;
    result.setAttribute("aria-label", "what the decoder draws from the " + text);
    if (loaded) tile(result, pick[0], pick[1]);
  }
  buttons.forEach(function (b) {
    b.addEventListener("click", function () {
      pick[+b.getAttribute("data-level")] = +b.getAttribute("data-index");
      show();
    });
  });
  sheet.onload = function () {
    loaded = true;
    buttons.forEach(function (b) { tile(b.querySelector("canvas"), spec.n, +b.getAttribute("data-index")); });
    show();
  };
  sheet.src = spec.sheet;
  show();
}
