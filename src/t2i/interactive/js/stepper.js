// The no-kernel image stepper: the slider picks one of the precomputed frames
// and every picture of the figure shows its image for that frame.
function t2iStepper(root) {
  var spec = JSON.parse(root.querySelector(".st-spec").textContent);
  var range = root.querySelector(".st-range"), images = root.querySelectorAll(".st-img");
  function show() {
    var frame = spec.frames[+range.value];
    images.forEach(function (img, k) { img.src = frame[k]; });
    root.querySelector(".st-label").textContent = spec.labels[+range.value];
    if (spec.notes) root.querySelector(".st-note").textContent = spec.notes[+range.value];
  }
  range.addEventListener("input", show);
  show();
}
