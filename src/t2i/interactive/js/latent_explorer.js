// The no-kernel latent explorer. Two sliders (or a click in a scatter) pick a
// point of the precomputed grid; every panel marks it over its scatter of
// encoded digits and shows that point's tile of its decoded-image sprite.
function t2iLatentExplorer(root) {
  var spec = JSON.parse(root.querySelector(".lx-spec").textContent);
  var sx = root.querySelector(".lx-x"), sy = root.querySelector(".lx-y");
  var n = spec.steps, size = 260, views = [];
  spec.panels.forEach(function (p) {
    var box = document.createElement("div");
    box.innerHTML = '<div style="font-weight:bold;margin-bottom:4px">' + p.title + '</div>' +
      '<div style="display:flex;gap:10px;align-items:flex-start">' +
      '<canvas class="lx-scatter" width="' + size + '" height="' + size + '" style="cursor:crosshair"></canvas>' +
      '<div><canvas class="lx-decoded" width="140" height="140" style="border:1px solid #888"></canvas>' +
      '<div class="lx-coords" style="color:#444;margin-top:4px"></div></div></div>';
    root.querySelector(".lx-panels").appendChild(box);
    var view = {p: p, scatter: box.querySelector(".lx-scatter"), decoded: box.querySelector(".lx-decoded"),
                coords: box.querySelector(".lx-coords"), sprite: new Image()};
    view.sprite.onload = draw;
    view.sprite.src = p.sprite;
    view.scatter.addEventListener("click", function (e) {
      var r = view.scatter.getBoundingClientRect();
      sx.value = Math.round((e.clientX - r.left) / r.width * (n - 1));
      sy.value = Math.round((1 - (e.clientY - r.top) / r.height) * (n - 1));
      draw();
    });
    views.push(view);
  });
  function draw() {
    var i = +sx.value, j = +sy.value;
    views.forEach(function (v) {
      var c = v.scatter.getContext("2d");
      c.fillStyle = "white"; c.fillRect(0, 0, size, size);
      v.p.points.forEach(function (pt) {
        c.fillStyle = spec.colors[pt[2] % 10];
        c.beginPath(); c.arc(pt[0] * size, (1 - pt[1]) * size, 1.8, 0, 2 * Math.PI); c.fill();
      });
      c.strokeStyle = "#888"; c.strokeRect(0.5, 0.5, size - 1, size - 1);
      var mx = i / (n - 1) * size, my = (1 - j / (n - 1)) * size;
      c.strokeStyle = "black"; c.lineWidth = 2;
      c.beginPath(); c.arc(mx, my, 7, 0, 2 * Math.PI); c.stroke();
      c.beginPath(); c.moveTo(mx - 11, my); c.lineTo(mx + 11, my); c.moveTo(mx, my - 11); c.lineTo(mx, my + 11); c.stroke();
      c.lineWidth = 1;
      for (var d = 0; d < 10; d++) {
        c.fillStyle = spec.colors[d]; c.fillRect(6 + d * 25, size - 16, 9, 9);
        c.fillStyle = "#222"; c.font = "11px sans-serif"; c.fillText(String(d), 17 + d * 25, size - 8);
      }
      if (!v.sprite.complete) return;
      var d2 = v.decoded.getContext("2d"), t = v.p.tile;
      d2.imageSmoothingEnabled = false;
      d2.drawImage(v.sprite, i * t, (n - 1 - j) * t, t, t, 0, 0, v.decoded.width, v.decoded.height);
      v.coords.textContent = "z = (" + v.p.xs[i].toFixed(2) + ", " + v.p.ys[j].toFixed(2) + ")";
    });
  }
  sx.addEventListener("input", draw);
  sy.addEventListener("input", draw);
  draw();
}
