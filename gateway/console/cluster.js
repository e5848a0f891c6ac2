// The cluster: every node with its address, start, last heartbeat and the
// queues it owns.
import { get } from "./api.js";
import { h, stat, table } from "./dom.js";
import { count, duration, time } from "./format.js";

export const title = "Cluster";

export async function render(view) {
  const c = await get("/v1/cluster");
  const now = Date.now();
  const live = c.nodes.filter((n) => n.live).length;
  view.append(
    h("h1", {}, "Cluster"),
    h("div", { class: "stats" },
      stat("This node", c.self), stat("Nodes", count(c.nodes.length)), stat("Live", count(live)),
      stat("Queues owned", count(c.nodes.reduce((a, n) => a + n.queues_owned, 0)))),
    table([
      ["Node", (n) => h("span", { class: "mono" }, n.id, n.id === c.self ? h("span", { class: "badge", style: { "margin-left": "6px" } }, "this node") : null)],
      ["Address", (n) => h("span", { class: "mono" }, n.address)],
      ["State", (n) => h("span", { class: "badge " + (n.live ? "ok" : "warn") }, n.state)],
      ["Started", (n) => time(n.started_ms)],
      ["Last heartbeat", (n) => time(n.last_heartbeat_ms) + " (" + duration(Math.max(0, now - n.last_heartbeat_ms)) + " ago)"],
      ["Queues owned", (n) => count(n.queues_owned), "num"],
    ], c.nodes, "No nodes."));
}
