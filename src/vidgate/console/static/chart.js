// A stacked bar chart in hand-written SVG: one bar per period, one colour per series.

const NS = "http://www.w3.org/2000/svg";
const COLOURS = ["#4f7cff", "#22a06b", "#e5793b", "#b552d9", "#d6455d", "#1ba3b8", "#c29b12", "#7a8699"];

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(NS, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

export function colour(index) {
  return COLOURS[index % COLOURS.length];
}

/**
 * periods: [{label, values: {series: number}}]; series: [name]. Returns an <svg> that scales to
 * its container's width (viewBox), with a <title> per bar segment for pointer and screen readers.
 */
export function stackedBars(periods, series, { title, unit = "", width = 720 } = {}) {
  // Drawn at the container's own width, so labels keep their size from a phone to a desktop.
  width = Math.max(300, Math.round(width));
  const height = width < 560 ? 220 : 280;
  const pad = { top: 16, right: 12, bottom: 36, left: 44 };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const totals = periods.map((p) => series.reduce((sum, s) => sum + (p.values[s] || 0), 0));
  const max = Math.max(1, ...totals);
  const step = niceStep(max);
  const top = Math.ceil(max / step) * step;
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", class: "bars" });
  root.append(svg("title", {}, title || "Usage"));
  for (let v = 0; v <= top; v += step) {
    const y = pad.top + plotH - (v / top) * plotH;
    root.append(svg("line", { x1: pad.left, x2: width - pad.right, y1: y, y2: y, class: "gridline" }));
    root.append(svg("text", { x: pad.left - 6, y: y + 4, "text-anchor": "end", class: "axis" }, formatTick(v)));
  }
  const slot = plotW / Math.max(1, periods.length);
  const barW = Math.max(2, Math.min(48, slot * 0.7));
  const labelEvery = Math.ceil(periods.length / Math.max(2, Math.floor(plotW / 56)));
  periods.forEach((period, i) => {
    const x = pad.left + i * slot + (slot - barW) / 2;
    let y = pad.top + plotH;
    series.forEach((name, s) => {
      const value = period.values[name] || 0;
      if (!value) return;
      const h = (value / top) * plotH;
      y -= h;
      const rect = svg("rect", { x, y, width: barW, height: h, fill: colour(s), class: "bar" });
      rect.append(svg("title", {}, `${period.label} · ${name}: ${value}${unit}`));
      root.append(rect);
    });
    if (i % labelEvery === 0) {
      root.append(svg("text", { x: x + barW / 2, y: height - pad.bottom + 18, "text-anchor": "middle", class: "axis" }, period.label));
    }
  });
  root.append(svg("line", { x1: pad.left, x2: width - pad.right, y1: pad.top + plotH, y2: pad.top + plotH, class: "baseline" }));
  return root;
}

function niceStep(max) {
  if (max <= 5) return 1;
  const rough = max / 4;
  const power = 10 ** Math.floor(Math.log10(rough));
  return [1, 2, 5, 10].map((m) => m * power).find((step) => step >= rough);
}

function formatTick(v) {
  if (v >= 1e6) return `${+(v / 1e6).toFixed(1)}M`;
  if (v >= 1e3) return `${+(v / 1e3).toFixed(1)}k`;
  return String(+v.toFixed(2));
}
