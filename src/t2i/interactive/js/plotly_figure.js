// Draw a plotly figure from the JSON in the element "<root id>-spec", once
// plotly.js (loaded once per page from the site's _static folder) is ready.
function t2iPlotlyFigure(root) {
  (function draw() {
    if (!window.Plotly) { return setTimeout(draw, 30); }
    var spec = JSON.parse(document.getElementById(root.id + "-spec").textContent);
    Plotly.newPlot(root, spec.data, spec.layout, {responsive: true, displaylogo: false});
  })();
}
