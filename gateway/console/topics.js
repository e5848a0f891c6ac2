// Topics: the list with this node's produce rates (a chart from /metrics),
// and one topic's queues (offsets, hot/cold bytes, cold segments, owner).
import { get, getText, seg } from "./api.js";
import { errorBox, h, replace, stat, table } from "./dom.js";
import { bytes, count, duration, rate } from "./format.js";
import { produceTotals, ratesBetween } from "./rates.js";
import { colorOf, drawLines } from "./chart.js";

export const title = "Topics";
const POLL_MS = 2000;
const SPAN_MS = 120000;

export async function render(view, [name]) {
  return name ? detail(view, name) : list(view);
}

async function list(view) {
  const { topics } = await get("/v1/topics");
  const link = (t) => h("a", { href: "#/topics/" + seg(t.name) }, t.name);
  view.append(
    h("h1", {}, "Topics"),
    h("div", { class: "card" },
      h("h2", { style: { margin: "0 0 8px" } }, "Produce rate on this node"),
      h("canvas", { id: "rate-chart", "aria-label": "produce rate chart" }),
      h("div", { class: "legend", id: "rate-legend" }),
      h("p", { class: "hint", id: "rate-status" }, "Sampling /metrics every 2 s…")),
    table([
      ["Name", link],
      ["Type", (t) => h("span", { class: "badge" }, t.message_type)],
      ["Queues", (t) => count(t.queues), "num"],
      ["Durability", (t) => t.durability],
      ["Retention", (t) => duration(t.retention_ms), "num"],
    ], topics, "No topics yet."));
  return startChart(view);
}

/** Polls /metrics and redraws the chart; returns the stop function. */
function startChart(view) {
  const canvas = view.querySelector("#rate-chart");
  const legend = view.querySelector("#rate-legend");
  const status = view.querySelector("#rate-status");
  const history = {};
  let last = null;
  let stopped = false;
  const tick = async () => {
    try {
      const sample = { at: Date.now(), totals: produceTotals(await getText("/metrics")) };
      if (stopped) return;
      if (last) {
        for (const [topic, v] of Object.entries(ratesBetween(last, sample))) {
          (history[topic] ||= []).push({ t: sample.at, v });
        }
      }
      last = sample;
      const series = Object.entries(history)
        .map(([name, points]) => ({ name, points: points.filter((p) => p.t > sample.at - SPAN_MS) }))
        .sort((a, b) => a.name.localeCompare(b.name));
      drawLines(canvas, series, sample.at, SPAN_MS, "msg/s");
      replace(legend, series.map((s, i) =>
        h("span", { style: { "--swatch": colorOf(i) } },
          s.name + " " + rate(s.points.length ? s.points[s.points.length - 1].v : 0))));
      status.textContent = series.length ? "Messages a second produced through this node, from its counters."
        : "No produce on this node yet.";
    } catch (err) {
      replace(status, errorBox(err));
    }
  };
  tick();
  const timer = setInterval(tick, POLL_MS);
  return () => { stopped = true; clearInterval(timer); };
}

async function detail(view, name) {
  const t = await get("/v1/topics/" + seg(name));
  const sum = (f) => t.queues.reduce((a, q) => a + (q[f] || 0), 0);
  view.append(
    h("h1", {}, h("a", { href: "#/topics" }, "Topics"), " / ", t.name),
    h("div", { class: "stats" },
      stat("Type", t.message_type), stat("Queues", count(t.queue_count)),
      stat("Durability", t.durability), stat("Retention", duration(t.retention_ms)),
      stat("Messages", count(t.queues.reduce((a, q) => a + q.max_offset - q.min_offset, 0))),
      stat("Hot bytes", bytes(sum("hot_bytes"))), stat("Cold bytes", bytes(sum("cold_bytes"))),
      t.message_type === "DELAY" ? stat("Pending timers", count(t.pending_timers)) : null,
      t.message_type === "TRANSACTION" ? stat("Pending transactions", count(t.pending_transactions)) : null),
    h("h2", {}, "Queues"),
    table([
      ["Queue", (q) => q.queue, "num"],
      ["Min offset", (q) => count(q.min_offset), "num"],
      ["Max offset", (q) => count(q.max_offset), "num"],
      ["Hot bytes", (q) => bytes(q.hot_bytes), "num"],
      ["Cold bytes", (q) => bytes(q.cold_bytes), "num"],
      ["Cold segments", (q) => count(q.cold_segments), "num"],
      ["Owner", (q) => h("span", { class: "mono" }, q.owner)],
      ["", (q) => h("a", { href: "#/messages/" + seg(t.name) + "/" + q.queue + "/" + q.min_offset }, "browse")],
    ], t.queues));
}
