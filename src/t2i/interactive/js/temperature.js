// The no-kernel Gumbel-softmax temperature explorer. The page holds every
// temperature's soft-code picture, entropy map (both PNG data URLs), bar chart
// (SVG) and summary; the slider picks a temperature and its parts are shown.
// The original, the hard-code picture and the position marks never change.
function t2iTemperature(root) {
  var spec = JSON.parse(root.querySelector(".tx-spec").textContent);
  var range = root.querySelector(".tx-range");
  function show() {
    var frame = spec.frames[+range.value];
    root.querySelector(".tx-soft").src = frame.soft;
    root.querySelector(".tx-entropy").src = frame.entropy;
    root.querySelector(".tx-bars").innerHTML = frame.bars;
    root.querySelector(".tx-summary").textContent = frame.summary;
    root.querySelectorAll(".tx-tau").forEach(function (t) { t.textContent = frame.tau; });
    range.setAttribute("aria-valuetext", frame.tau);
  }
  range.addEventListener("input", show);
  root.querySelector(".tx-controls").hidden = false;  // the slider works now
  show();
}
