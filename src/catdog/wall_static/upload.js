// The phone's page: a photo from the camera or the gallery, shrunk here before it is sent (a phone
// photo is megabytes; the models see 224 pixels), then both verdicts for that photo, then right/wrong.
import { agreementText, joinRoom, verdictText } from "./room.js";

const $ = (id) => document.getElementById(id);
const MAX_SIDE = 1280;
const JPEG_QUALITY = 0.85;
let current = null;  // {partition, offset, pretrained label} of the photo on screen

// A JPEG at most MAX_SIDE pixels on its longer side, upright; null when this browser cannot decode the
// file (then the file goes as it is, and the server's decoder says what is wrong with it).
async function shrink(file) {
  try {
    const bitmap = await createImageBitmap(file, {imageOrientation: "from-image"});
    const scale = Math.min(1, MAX_SIDE / Math.max(bitmap.width, bitmap.height));
    const canvas = document.createElement("canvas");
    canvas.width = Math.round(bitmap.width * scale);
    canvas.height = Math.round(bitmap.height * scale);
    canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    return await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", JPEG_QUALITY));
  } catch {
    return null;
  }
}

const SEND_TRIES = 5;  // over 20 s: a connection cut while sending (the wall restarting, or refusing a photo while busy)
const RETRY_MS = 2000;  // the wait before the next try, times the tries so far
const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitForResult(sent) {
  for (;;) {
    let response;
    try {
      response = await fetch(`/api/photos/${sent.partition}/${sent.offset}`);
    } catch {  // the wall restarting: the photo is on Kafka, its result will be there when the wall is back
      await pause(RETRY_MS);
      continue;
    }
    if (response.status === 200) return response.json();
    if (response.status !== 204) throw new Error((await response.json()).error || `error ${response.status}`);
  }
}

// The photo, sent again when the connection is cut before an answer; null when every try was cut.
async function post(query, body) {
  for (let tries = 1; ; tries++) {
    try {
      return await fetch(`/api/photos?${query}`, {
        method: "POST", body, headers: {"Content-Type": body.type || "application/octet-stream"},
      });
    } catch {
      if (tries === SEND_TRIES) return null;
      $("status").textContent = "The wall did not answer: sending again…";
      await pause(RETRY_MS * tries);
    }
  }
}

async function send(file) {
  $("error").textContent = "";
  $("thanks").textContent = "";
  $("result").hidden = true;
  $("status").textContent = "Shrinking…";
  const small = await shrink(file);
  const name = small ? file.name.replace(/\.[^.]*$/, "") + ".jpg" : file.name;
  const learner = $("learner").value.trim();
  localStorage.setItem("catdog-learner", learner);
  $("status").textContent = "Sending…";
  const query = new URLSearchParams({filename: name, learner});
  const response = await post(query, small || file);
  if (response === null) {
    $("status").textContent = "";
    $("error").textContent = "The photo did not reach the wall (it is busy or restarting): send it again in a moment.";
    return;
  }
  const answer = await response.json().catch(() => ({error: `error ${response.status}`}));
  if (!response.ok) {
    $("status").textContent = "";
    $("error").textContent = answer.error;
    return;
  }
  $("status").textContent = "Sent: the models are looking…";
  const result = await waitForResult(answer);
  $("status").textContent = "";
  show(small || file, result);
}

function show(picture, result) {
  current = {partition: result.partition, offset: result.offset, label: result.pretrained.label};
  $("preview").src = URL.createObjectURL(picture);
  $("quick").textContent = verdictText("quick", result.quick);
  $("pretrained").textContent = verdictText("pretrained", result.pretrained);
  $("agree").textContent = agreementText(result.agree);
  const other = current.label === "dog" ? "cat" : "dog";
  $("question").textContent = `Is it a ${current.label}, as the pretrained model says?`;
  $("right").textContent = `✔ Right: a ${current.label}`;
  $("wrong").textContent = `✘ Wrong: a ${other}`;
  $("right").dataset.label = current.label;
  $("wrong").dataset.label = other;
  for (const button of [$("right"), $("wrong")]) button.disabled = false;
  $("result").hidden = false;
}

async function answer(event) {
  for (const button of [$("right"), $("wrong")]) button.disabled = true;  // one answer per photo
  const label = event.target.dataset.label;
  const response = await fetch("/api/feedback", {
    method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({partition: current.partition, offset: current.offset, label, learner: $("learner").value.trim()}),
  });
  const reply = await response.json().catch(() => ({}));
  $("thanks").textContent = response.ok ? `Thanks: recorded as a ${label}.` : (reply.error || `error ${response.status}`);
}

$("learner").value = localStorage.getItem("catdog-learner") || "";
$("right").addEventListener("click", answer);
$("wrong").addEventListener("click", answer);
$("photo").addEventListener("change", () => {
  const file = $("photo").files[0];
  if (file) send(file).catch((problem) => { $("status").textContent = ""; $("error").textContent = String(problem); });
  $("photo").value = "";  // the same photo again is a new send
});
await joinRoom($("join"), $("join-error"));
$("send").hidden = false;
