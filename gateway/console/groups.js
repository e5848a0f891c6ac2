// Consumer groups: the list with total lag (split hot/cold), and one
// group's offsets on each topic with the tier-aware lag per queue.
import { get, seg } from "./api.js";
import { errorBox, h, stat, table } from "./dom.js";
import { count, duration, rate } from "./format.js";

export const title = "Groups";

export async function render(view, [name]) {
  return name ? detail(view, name) : list(view);
}

/** A bar of the lag's hot and cold parts. */
function tierBar(hot, cold) {
  const total = hot + cold;
  if (!total) return h("span", { class: "muted" }, "–");
  return h("div", { class: "bar", title: `hot ${hot}, cold ${cold}` },
    h("div", { class: "hot", style: { width: (100 * hot) / total + "%" } }),
    h("div", { class: "cold", style: { width: (100 * cold) / total + "%" } }));
}

async function list(view) {
  const { groups } = await get("/v1/groups");
  view.append(
    h("h1", {}, "Consumer groups"),
    table([
      ["Name", (g) => h("a", { href: "#/groups/" + seg(g.name) }, g.name)],
      ["Mode", (g) => g.consume_mode],
      ["Max attempts", (g) => g.max_delivery_attempts, "num"],
      ["Lag", (g) => count(g.lag), "num"],
      ["Hot lag", (g) => count(g.lag_hot), "num"],
      ["Cold lag", (g) => count(g.lag_cold), "num"],
      ["Hot / cold", (g) => tierBar(g.lag_hot, g.lag_cold)],
    ], groups, "No groups yet."),
    h("div", { class: "legend" },
      h("span", { style: { "--swatch": "var(--hot)" } }, "hot: on the serving node's disk"),
      h("span", { style: { "--swatch": "var(--cold)" } }, "cold: only in the object store")));
}

async function detail(view, name) {
  const group = await get("/v1/groups/" + seg(name));
  const { topics } = await get("/v1/topics");
  view.append(
    h("h1", {}, h("a", { href: "#/groups" }, "Groups"), " / ", group.name),
    h("p", { class: "muted" },
      `${group.consume_mode}, at most ${group.max_delivery_attempts} deliver${group.max_delivery_attempts === 1 ? "y" : "ies"}, then `,
      h("a", { href: "#/dlq/" + seg("%DLQ%" + group.name) }, "%DLQ%" + group.name)));
  // Offsets per topic; a topic the group has nothing on is only named.
  const answers = await Promise.all(topics.filter((t) => !t.name.startsWith("%")).map(async (t) => {
    try {
      return { topic: t.name, offsets: await get(`/v1/groups/${seg(name)}/offsets?topic=${seg(t.name)}`) };
    } catch (err) {
      return { topic: t.name, err };
    }
  }));
  const quiet = [];
  for (const a of answers) {
    if (a.err) { view.append(h("h2", {}, a.topic), errorBox(a.err)); continue; }
    const t = a.offsets.total;
    const committed = a.offsets.queues.some((q) => q.committed_offset > 0);
    if (!t.lag && !t.inflight && !t.retrying && !t.pending_timers && !committed) { quiet.push(a.topic); continue; }
    view.append(
      h("h2", {}, h("a", { href: "#/topics/" + seg(a.topic) }, a.topic)),
      h("div", { class: "stats" },
        stat("Lag", count(t.lag)), stat("Hot lag", count(t.lag_hot)), stat("Cold lag", count(t.lag_cold)),
        stat("In flight", count(t.inflight)), stat("Retrying", count(t.retrying)),
        stat("Pending timers", count(t.pending_timers)),
        stat("Consume rate", rate(t.consume_rate_per_s)),
        stat("Catch-up", t.catch_up_ms === null ? "no recent acks" : duration(t.catch_up_ms))),
      table([
        ["Queue", (q) => q.queue, "num"],
        ["Committed", (q) => count(q.committed_offset), "num"],
        ["Max", (q) => count(q.max_offset), "num"],
        ["Lag", (q) => count(q.lag), "num"],
        ["Hot", (q) => count(q.lag_hot), "num"],
        ["Cold", (q) => count(q.lag_cold), "num"],
        ["Hot / cold", (q) => tierBar(q.lag_hot, q.lag_cold)],
        ["In flight", (q) => count(q.inflight), "num"],
        ["Retrying", (q) => count(q.retrying), "num"],
        ["Timers", (q) => count(q.pending_timers), "num"],
        ["Rate", (q) => rate(q.consume_rate_per_s), "num"],
        ["Catch-up", (q) => duration(q.catch_up_ms), "num"],
      ], a.offsets.queues));
  }
  if (quiet.length) view.append(h("p", { class: "muted" }, "No lag or deliveries on: " + quiet.join(", ")));
}
