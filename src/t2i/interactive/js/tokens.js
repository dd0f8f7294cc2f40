// The no-kernel token reading figure. Both readings' diagrams and sentences are
// in the page (the off-by-one one hidden, so the page reads well without this
// script); the two buttons pick a reading, show its diagram and set the root's
// data-reading, from which the page's style outlines that reading's pictures.
function t2iTokens(root) {
  var spec = JSON.parse(root.querySelector(".tr-spec").textContent);
  var buttons = root.querySelectorAll(".tr-pick");
  function show(reading) {
    root.setAttribute("data-reading", reading);
    buttons.forEach(function (b) {
      b.setAttribute("aria-pressed", b.getAttribute("data-reading") === reading ? "true" : "false");
    });
    root.querySelectorAll("[data-for]").forEach(function (part) {
      part.hidden = part.getAttribute("data-for") !== reading;
    });
  }
  buttons.forEach(function (b) {
    b.addEventListener("click", function () { show(b.getAttribute("data-reading")); });
  });
  root.querySelector(".tr-toggle").hidden = false;  // the buttons work now
  show(spec.start);
}
