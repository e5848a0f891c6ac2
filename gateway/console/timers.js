// Pending delay messages of DELAY topics, with recall
// (DELETE /v1/topics/{t}/messages/{id}).
import { api, get, seg } from "./api.js";
import { errorBox, h, notice, replace, table } from "./dom.js";
import { duration, time } from "./format.js";

export const title = "Timers";

export async function render(view, [topic]) {
  const { topics } = await get("/v1/topics");
  const delay = topics.filter((t) => t.message_type === "DELAY").map((t) => t.name);
  view.append(h("h1", {}, "Pending timers"));
  if (!delay.length) {
    view.append(h("div", { class: "empty card" }, "No DELAY topics."));
    return;
  }
  const chosen = delay.includes(topic) ? topic : delay[0];
  const status = h("div", { id: "timer-status" });
  const list = h("div", { id: "timer-list" });
  view.append(
    h("form", { class: "inline card" },
      h("label", {}, "Topic", h("select", {
        id: "timer-topic", onchange: (e) => { location.hash = "#/timers/" + seg(e.target.value); },
      }, delay.map((n) => h("option", { value: n, selected: n === chosen }, n))))),
    status, list);
  await load(chosen, list, status, null);
}

async function load(topic, list, status, after) {
  const path = `/v1/topics/${seg(topic)}/timers?limit=100` + (after ? "&after=" + seg(after) : "");
  const page = await get(path);
  const now = Date.now();
  const recall = async (t, button) => {
    button.disabled = true;
    try {
      await api("DELETE", `/v1/topics/${seg(topic)}/messages/${seg(t.message_id)}`);
      replace(status, notice(`Recalled ${t.message_id}: it will never be delivered.`));
      button.closest("tr").remove();
    } catch (err) {
      button.disabled = false;
      replace(status, errorBox(err));
    }
  };
  replace(list,
    table([
      ["Message id", (t) => h("span", { class: "mono" }, t.message_id)],
      ["Queue", (t) => t.queue, "num"],
      ["Deliver at", (t) => time(t.deliver_at_ms)],
      ["Due in", (t) => duration(Math.max(0, t.deliver_at_ms - now)), "num"],
      ["Tag", (t) => t.tag || ""],
      ["Keys", (t) => (t.keys || []).join(", ")],
      ["", (t) => {
        const b = h("button", { class: "danger recall", type: "button", "data-message-id": t.message_id }, "Recall");
        b.addEventListener("click", () => recall(t, b));
        return b;
      }],
    ], page.timers, "No pending timers on this topic."),
    page.next ? h("p", {}, h("button", { type: "button", onclick: () => load(topic, list, status, page.next) }, "Next page")) : null);
}
