// Dead letters: the messages of `%DLQ%{group}` topics, each with its origin
// and a "send back" to that topic (POST …/messages/{id}/send-back, which
// produces it again and records it as handled).
import { ApiError, api, get, seg } from "./api.js";
import { errorBox, h, notice, replace } from "./dom.js";
import { messageCard } from "./messages.js";

export const title = "Dead letters";
const PAGE = 50;

const prop = (m, name) => (m.properties || {})[name];

export async function render(view, [topic]) {
  const { topics } = await get("/v1/topics");
  const dlqs = topics.filter((t) => t.name.startsWith("%DLQ%")).map((t) => t.name);
  view.append(h("h1", {}, "Dead letters"));
  if (!dlqs.length) {
    view.append(h("div", { class: "empty card" }, "No dead-letter topics: no group has dead-lettered a message."));
    return;
  }
  const chosen = dlqs.includes(topic) ? topic : dlqs[0];
  const status = h("div", { id: "dlq-status" });
  view.append(
    h("form", { class: "inline card" },
      h("label", {}, "Dead-letter topic", h("select", {
        id: "dlq-topic", onchange: (e) => { location.hash = "#/dlq/" + seg(e.target.value); },
      }, dlqs.map((n) => h("option", { value: n, selected: n === chosen }, n))))),
    status);
  const detail = await get("/v1/topics/" + seg(chosen));
  const q = detail.queues[0];
  const from = Math.max(q.min_offset, q.max_offset - PAGE);
  const { messages } = await get(`/v1/topics/${seg(chosen)}/queues/0/messages?offset=${from}&max_messages=${PAGE}`);
  view.append(h("p", { class: "muted" },
    `${q.max_offset - q.min_offset} message(s) in ${chosen}` + (from > q.min_offset ? `, the last ${PAGE} shown` : "")));
  const sent = await Promise.all(messages.map((m) =>
    get(`/v1/topics/${seg(chosen)}/messages/${seg(m.message_id)}/send-back`).catch((err) => {
      if (err instanceof ApiError && err.code === "MESSAGE_NOT_FOUND") return null;
      throw err;
    })));
  if (!messages.length) view.append(h("div", { class: "empty card" }, "Empty."));
  messages.reverse().forEach((m, i) => {
    const record = sent[messages.length - 1 - i];
    view.append(messageCard(m, sendBackControl(chosen, m, record, status)));
  });
}

function sentBadge(r) {
  return h("span", { class: "badge ok sent-back" },
    `sent back → ${r.topic} queue ${r.queue} offset ${r.offset}`);
}

function sendBackControl(dlq, m, record, status) {
  if (record) return sentBadge(record);
  const origin = prop(m, "shale.origin_topic");
  if (!origin) return h("span", { class: "muted" }, "no origin topic");
  const holder = h("span", {});
  const button = h("button", { class: "primary send-back", type: "button", "data-message-id": m.message_id },
    "Send back to " + origin);
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      const r = await api("POST", `/v1/topics/${seg(dlq)}/messages/${seg(m.message_id)}/send-back`);
      replace(status, notice(`Sent ${m.message_id} back to ${r.topic}: new message ${r.message_id} at queue ${r.queue}, offset ${r.offset}.`));
      replace(holder, sentBadge(r));
    } catch (err) {
      button.disabled = false;
      replace(status, errorBox(err));
    }
  });
  holder.append(button);
  return holder;
}
