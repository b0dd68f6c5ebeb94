"""The pictures of ``inspect``: saturation.png and the page cells.html.

They only draw what ``internals`` computes. matplotlib is imported inside
``plot_saturation`` (Agg canvas, no pyplot), so importing this module is cheap.

cells.html is one self-contained file, opened from disk: inline CSS, a little
inline JavaScript, no CDN, no external ``src`` or ``href``. The text is in the
page once, HTML-escaped inside a ``<pre>`` (so ``<script>`` in the text stays
text, and the page reads without JavaScript). The chosen cells' tanh(c) are
stored quantised to int8 (round(127 tanh c)), base64 in a JSON blob: about
27 kB per cell for 20,000 characters. The script splits the text into one
``<span>`` per character and colours its background by the chosen cell, blue
for negative and red for positive, as in Karpathy et al.'s figures.
"""
import base64
import html
import json

import numpy as np


def quantise(values):
    """(T,) values in [-1, 1] -> (T,) int8, round(127 * value)."""
    return np.round(np.clip(np.asarray(values, float), -1, 1) * 127).astype(np.int8)


def cell_key(layer, unit):
    return f"L{layer}U{unit}"


_CSS = """
body { margin: 0; font: 14px/1.4 system-ui, sans-serif; color: #222; display: flex; height: 100vh; }
#side { width: 270px; flex: none; overflow-y: auto; padding: 10px 12px; border-right: 1px solid #ccc;
        background: #fafafa; }
#side h1 { font-size: 16px; margin: 0 0 6px; }
#side h2 { font-size: 13px; margin: 12px 0 4px; font-family: monospace; }
#side p { font-size: 12px; color: #555; margin: 4px 0; }
button.cell { display: block; width: 100%; text-align: left; font: 12px monospace; margin: 1px 0;
              padding: 2px 6px; border: 1px solid #ddd; background: #fff; cursor: pointer; }
button.cell:hover { background: #eef; }
button.cell.on { background: #333; color: #fff; }
#main { flex: 1; overflow-y: auto; padding: 10px 16px; }
#status { position: sticky; top: 0; background: #fff; padding: 4px 0; font: 12px monospace;
          border-bottom: 1px solid #eee; }
.bar { display: inline-block; width: 160px; height: 10px; vertical-align: middle;
       background: linear-gradient(to right, rgb(120,150,255), #fff, rgb(255,120,120)); }
pre#text { font: 13px/1.35 monospace; white-space: pre-wrap; word-break: break-all; margin: 8px 0; }
"""

_JS = """
(function () {
  var data = JSON.parse(document.getElementById("cells").textContent);
  var pre = document.getElementById("text"), status = document.getElementById("status-text");
  var text = pre.textContent, spans = [], frag = document.createDocumentFragment();
  for (var t = 0; t < text.length; t++) {
    var s = document.createElement("span");
    s.textContent = text[t];
    s.dataset.t = t;
    spans.push(s);
    frag.appendChild(s);
  }
  pre.textContent = "";
  pre.appendChild(frag);
  var values = null, label = "";
  function decode(b64) {
    var raw = atob(b64), out = new Int8Array(raw.length);
    for (var i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i) << 24 >> 24;
    return out;
  }
  function colour(v) {                       // v in [-1, 1]: blue negative, white 0, red positive
    var a = Math.abs(v), mix = function (end) { return Math.round(255 + a * (end - 255)); };
    // the ends are light enough for black text to stay readable
    return v >= 0 ? "rgb(255," + mix(120) + "," + mix(120) + ")"
                  : "rgb(" + mix(120) + "," + mix(150) + ",255)";
  }
  function show(button) {
    var buttons = document.querySelectorAll("button.cell");
    for (var b = 0; b < buttons.length; b++) buttons[b].classList.remove("on");
    button.classList.add("on");
    values = decode(data[button.dataset.cell]);
    label = button.dataset.label;
    for (var t = 0; t < spans.length; t++) spans[t].style.backgroundColor = colour(values[t] / 127);
    status.textContent = label;
  }
  document.getElementById("side").addEventListener("click", function (e) {
    if (e.target.classList.contains("cell")) show(e.target);
  });
  pre.addEventListener("mouseover", function (e) {
    if (values && e.target.dataset.t !== undefined) {
      var t = +e.target.dataset.t;
      status.textContent = label + "   char " + t + ": tanh(c) = " + (values[t] / 127).toFixed(2);
    }
  });
  var first = document.querySelector("button.cell");
  if (first) show(first);
})();
"""


def cells_html(text, states, top, title="Cells of a character LSTM"):
    """The page as a str.

    Inputs:
    - text: str of T characters
    - states: (T, L, H) tanh(c) in [-1, 1]
    - top: dict feature name -> list of (layer, unit, r), the cells to offer
      (``internals.top_cells``), in the order to list them
    """
    states = np.asarray(states)
    if states.shape[0] != len(text):
        raise ValueError(f"cells_html: expected states of shape ({len(text)}, L, H), "
                         f"got {states.shape}")
    blobs, buttons = {}, []
    for name, cells in top.items():
        buttons.append(f"<h2>{html.escape(name)}</h2>")
        for layer, unit, r in cells:
            key = cell_key(layer, unit)
            if key not in blobs:
                blobs[key] = base64.b64encode(quantise(states[:, layer, unit]).tobytes()).decode()
            label = f"layer {layer} unit {unit}: r = {r:+.2f} with {name}"
            buttons.append(f'<button class="cell" data-cell="{key}" data-label="{html.escape(label)}">'
                           f"layer {layer} unit {unit:<4d} r = {r:+.2f}</button>")
    # JSON inside <script>: "</" and "<!--" must not appear; base64 and keys never hold them,
    # and escaping "<" keeps it so for any key.
    blob = json.dumps(blobs, separators=(",", ":")).replace("<", "\\u003c")
    T, L, H = states.shape
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<div id="side">
<h1>{html.escape(title)}</h1>
<p>{T} characters, {L} layer(s) of {H} cells. Each character's background is the chosen
cell's tanh(c) after reading it: <span class="bar"></span> from -1 (blue) through 0 (white)
to +1 (red).</p>
<p>The cells most correlated (Pearson r) with each feature of the text, the highest |r| first.
Click one to colour the text; hover over a character for its value.</p>
{chr(10).join(buttons)}
</div>
<div id="main">
<div id="status"><span id="status-text">(choose a cell)</span></div>
<pre id="text">{html.escape(text, quote=False)}</pre>
</div>
<script type="application/json" id="cells">{blob}</script>
<script>{_JS}</script>
</body>
</html>
"""


def write_cells_html(path, text, states, top, title="Cells of a character LSTM"):
    """Write ``cells_html(...)`` to ``path`` (UTF-8); returns the path."""
    from pathlib import Path

    from ..files import write_text

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, cells_html(text, states, top, title))
    return path


def plot_saturation(path, table, title=None):
    """Karpathy et al.'s Fig. 3: per gate i, f, o, each unit's left- against right-saturated fraction.

    One panel per gate, the layers in colours (counted from 0, as in
    cells.json); x is the fraction of steps with the gate < 0.1, y the
    fraction > 0.9. A unit near the origin is rarely
    saturated; one on the dashed line left + right = 1 always is, mostly open
    toward the y axis and mostly closed toward the x axis.

    Inputs:
    - path: the PNG to write
    - table: ``internals.saturation_table(...)``
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    gates = [("i", "input gate"), ("f", "forget gate"), ("o", "output gate")]
    layers = sorted({row["layer"] for row in table})
    fig = Figure(figsize=(12, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3, sharex=True, sharey=True)
    colours = ["tab:blue", "tab:green", "tab:red", "tab:purple", "tab:orange", "tab:brown"]
    for ax, (gate, label) in zip(axes, gates):
        ax.plot([0, 1], [1, 0], color="0.6", linestyle="--", linewidth=0.8)
        for k in layers:
            row = next(r for r in table if r["layer"] == k and r["gate"] == gate)
            ax.scatter(row["left"], row["right"], s=12, alpha=0.6, color=colours[k % len(colours)],
                       edgecolors="none", label=f"layer {k}")
        ax.set_title(label)
        ax.set_xlabel("fraction left-saturated (< 0.1)")
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.02)
        ax.set_aspect("equal")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("fraction right-saturated (> 0.9)")
    axes[0].legend(loc="upper right", fontsize="small")
    fig.suptitle(title or "Gate saturation per unit (Karpathy, Johnson & Fei-Fei 2015, Fig. 3)")
    from pathlib import Path

    from ..files import atomic_write

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))
    return path


def write_inspection(result, out, title=None):
    """The three files of ``inspect`` into the folder ``out``: saturation.png, cells.json, cells.html.

    Inputs:
    - result: ``internals.inspect_text(...)``
    - out: the folder (created if missing)

    Returns:
    - dict name -> path written
    """
    from pathlib import Path

    from ..files import write_json
    from .internals import cells_json

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"saturation.png": out / "saturation.png", "cells.json": out / "cells.json",
             "cells.html": out / "cells.html"}
    plot_saturation(paths["saturation.png"], result["saturation"], title=title and f"{title}: gate saturation")
    write_json(paths["cells.json"], cells_json(result))
    write_cells_html(paths["cells.html"], result["text"], result["states"], result["top"],
                     title=title or "Cells of a character LSTM")
    return paths
