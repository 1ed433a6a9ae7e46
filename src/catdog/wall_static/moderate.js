// The instructor's page: the wall's cards, each with "hide" and "block this phone"; pause and resume
// uploads; change the room's code. Every text a sender wrote goes in with textContent.
import { joinRoom } from "./room.js";

const $ = (id) => document.getElementById(id);
let paused = false;

async function act(action, id) {
  const response = await fetch("/api/moderate", {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({action, id}),
  });
  const answer = await response.json().catch(() => ({error: `error ${response.status}`}));
  $("status").textContent = response.ok ? `done: ${action}` : answer.error;
  if (response.ok && !answer.code) show(answer);
  return response.ok ? answer : null;
}

function show(summary) {
  paused = summary.paused;
  $("pause").textContent = paused ? "Resume uploads" : "Pause uploads";
  const items = summary.hidden.map((id) => {
    const item = document.createElement("li");
    const again = document.createElement("button");
    again.type = "button";
    again.textContent = `show ${id} again`;
    again.addEventListener("click", () => act("show", id));
    item.append(again);
    return item;
  });
  $("hidden").replaceChildren(...items);
}

function addCard(card) {
  const node = $("card-template").content.firstElementChild.cloneNode(true);
  node.dataset.id = card.id;
  node.querySelector(".thumb").src = card.thumb;
  node.querySelector(".learner").textContent = card.learner || "someone";
  node.querySelector(".filename").textContent = card.filename;
  node.querySelector(".hide").addEventListener("click", () => act("hide", card.id));
  node.querySelector(".block").addEventListener("click", () => act("block", card.id));
  $("cards").querySelector(`[data-id="${CSS.escape(card.id)}"]`)?.remove();
  $("cards").prepend(node);
}

async function start() {
  $("desk").hidden = false;
  show(await (await fetch("/api/moderation")).json());
  $("pause").addEventListener("click", () => act(paused ? "resume" : "pause"));
  $("rotate").addEventListener("click", async () => {
    if (!confirm("Every phone will have to join again with the new code. Change it?")) return;
    const answer = await act("rotate");
    if (answer) $("new-code").textContent = `New code ${answer.code}: the projector's QR code shows it now. Phones: ${answer.upload}`;
  });
  const events = new EventSource("/api/events");
  events.addEventListener("snapshot", (event) => {
    $("cards").replaceChildren();
    JSON.parse(event.data).cards.forEach(addCard);
  });
  events.addEventListener("card", (event) => addCard(JSON.parse(event.data)));
  events.addEventListener("hide", async (event) => {
    $("cards").querySelector(`[data-id="${CSS.escape(JSON.parse(event.data).id)}"]`)?.remove();
    show(await (await fetch("/api/moderation")).json());
  });
  events.addEventListener("paused", async () => show(await (await fetch("/api/moderation")).json()));
}

await joinRoom($("join"), $("join-error"), "key");
await start();
