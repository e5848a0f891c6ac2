// A small line chart on a <canvas>: one line per series, time on x.

const COLORS = ["#2456c9", "#c2410c", "#1e7a3b", "#7c3aed", "#b91c1c", "#0e7490", "#a16207"];

export function colorOf(i) { return COLORS[i % COLORS.length]; }

/**
 * Draws `series` (`[{name, points: [{t, v}]}]`) over the last `spanMs`
 * ending at `now`, with a y axis from 0 to the largest value.
 */
export function drawLines(canvas, series, now, spanMs, unit) {
  const dpr = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 600, height = canvas.clientHeight || 220;
  canvas.width = Math.round(width * dpr);
  canvas.height = Math.round(height * dpr);
  const g = canvas.getContext("2d");
  g.scale(dpr, dpr);
  g.clearRect(0, 0, width, height);
  const pad = { left: 56, right: 12, top: 12, bottom: 24 };
  const w = width - pad.left - pad.right, hgt = height - pad.top - pad.bottom;
  const max = Math.max(1, ...series.flatMap((s) => s.points.map((p) => p.v)));
  const top = niceCeil(max);
  g.font = "11px system-ui, sans-serif";
  g.strokeStyle = "#e3e7ee";
  g.fillStyle = "#5d6675";
  g.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = pad.top + hgt - (hgt * i) / 4;
    g.beginPath(); g.moveTo(pad.left, y); g.lineTo(pad.left + w, y); g.stroke();
    const label = ((top * i) / 4).toLocaleString("en-US", { maximumFractionDigits: 1 });
    g.textAlign = "right"; g.textBaseline = "middle";
    g.fillText(label + (i === 4 ? " " + unit : ""), pad.left - 6, y);
  }
  g.textAlign = "center"; g.textBaseline = "top";
  for (let i = 0; i <= 4; i++) {
    const x = pad.left + (w * i) / 4;
    const ago = Math.round(((4 - i) * spanMs) / 4 / 1000);
    g.fillText(ago === 0 ? "now" : "-" + ago + "s", x, pad.top + hgt + 6);
  }
  series.forEach((s, i) => {
    g.strokeStyle = colorOf(i);
    g.lineWidth = 2;
    g.beginPath();
    s.points.forEach((p, j) => {
      const x = pad.left + w * (1 - (now - p.t) / spanMs);
      const y = pad.top + hgt - (hgt * p.v) / top;
      if (j === 0) g.moveTo(x, y); else g.lineTo(x, y);
    });
    g.stroke();
    g.fillStyle = colorOf(i);
    for (const p of s.points) {
      const x = pad.left + w * (1 - (now - p.t) / spanMs);
      const y = pad.top + hgt - (hgt * p.v) / top;
      g.beginPath(); g.arc(x, y, 2.5, 0, 2 * Math.PI); g.fill();
    }
  });
}

function niceCeil(v) {
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}
