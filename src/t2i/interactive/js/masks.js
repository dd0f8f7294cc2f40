// The no-kernel attention-mask viewer. Each layer's mask is one PNG, and each
// query's row of it is a hex string (four positions a digit, highest bit
// first). The layer buttons swap the picture; hovering a row of the mask (a
// click keeps it), the query slider or a click on a grid cell picks the query,
// whose row is drawn as the g x g grid of image tokens it may read.
function t2iMasks(root) {
  var spec = JSON.parse(root.querySelector(".mk-spec").textContent);
  var T = spec.text, g = spec.grid, L = T + g * g, layer = spec.start;
  var range = root.querySelector(".mk-query"), picture = root.querySelector(".mk-png");
  var band = root.querySelector(".mk-band"), cells = root.querySelectorAll(".mk-cell");
  var buttons = root.querySelectorAll(".mk-pick"), colours = spec.colours;
  function bit(hex, i) { return (parseInt(hex.charAt(i >> 2), 16) >> (3 - (i & 3))) & 1; }
  function count(read, total, kind) {
    if (read === total) return "all " + total + " " + kind + " tokens";
    if (read === 0) return "no " + kind + " token";
    return read + " of the " + total + " " + kind + " tokens";
  }
  function describe(q) {
    if (q < T) return "position " + q + ": text token " + q;
    var cell = q - T;
    return "position " + q + ": image token " + cell + " (row " + Math.floor(cell / g) +
      ", column " + (cell % g) + ")";
  }
  function show(q) {
    var hex = spec.rows[layer][q], text = 0, image = 0;
    for (var i = 0; i < T; i++) text += bit(hex, i);
    cells.forEach(function (cell, k) {
      var on = bit(hex, T + k);
      image += on;
      cell.setAttribute("fill", T + k === q ? colours.query : on ? colours.read : colours.blocked);
      cell.setAttribute("data-read", on ? "1" : "0");
    });
    band.setAttribute("transform", "translate(0 " + q * spec.scale + ")");
    var said = (q < T ? "text token " + q : "image token " + (q - T)) +
      " may read " + count(image, g * g, "image");
    if (T) said += " and " + count(text, T, "text");
    root.querySelector(".mk-reads").textContent = said;
    root.querySelector(".mk-query-text").textContent = describe(q);
    range.setAttribute("aria-valuetext", describe(q));
  }
  function pickLayer(k) {
    layer = k;
    picture.setAttribute("href", spec.masks[k]);
    root.querySelector(".mk-title").textContent = spec.titles[k];
    buttons.forEach(function (b) {
      b.setAttribute("aria-pressed", +b.getAttribute("data-layer") === k ? "true" : "false");
    });
    show(+range.value);
  }
  function rowAt(e) {
    var r = picture.getBoundingClientRect();
    var q = Math.floor((e.clientY - r.top) / r.height * L);
    return Math.max(0, Math.min(L - 1, q));
  }
  var heat = root.querySelector(".mk-heat");
  heat.addEventListener("mousemove", function (e) { show(rowAt(e)); });
  heat.addEventListener("mouseleave", function () { show(+range.value); });
  heat.addEventListener("click", function (e) { range.value = rowAt(e); show(+range.value); });
  cells.forEach(function (cell, k) {
    cell.addEventListener("click", function () { range.value = T + k; show(T + k); });
  });
  range.addEventListener("input", function () { show(+range.value); });
  buttons.forEach(function (b) {
    b.addEventListener("click", function () { pickLayer(+b.getAttribute("data-layer")); });
  });
  root.querySelector(".mk-layers").hidden = false;  // the controls work now
  root.querySelector(".mk-controls").hidden = false;
  pickLayer(layer);
}
