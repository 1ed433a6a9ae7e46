// Joining the room, shared by the wall and the upload page: the room's code comes in the link
// (#code=..., from the QR code) or is typed once; the server answers with a cookie for later calls.

async function tryJoin(field, value) {
  const response = await fetch("/api/join", {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({[field]: value}),
  });
  if (response.ok) return null;
  return (await response.json().catch(() => ({}))).error || `refused (${response.status})`;
}

// field: "code" (the room's, for phones and the projector) or "key" (the moderator's, which is taken out
// of the address bar once used: a projected screen must never show it).
export async function joinRoom(form, errorLine, field = "code") {
  const fromLink = new URLSearchParams(location.hash.slice(1)).get(field);
  if (fromLink) {
    if (field === "key") history.replaceState(null, "", location.pathname);
    const problem = await tryJoin(field, fromLink);
    if (!problem) return;
    errorLine.textContent = problem;
  } else if ((await fetch("/api/room")).ok) {
    return;  // joined before: the cookie is still good
  }
  form.hidden = false;
  form.querySelector("input").focus();
  await new Promise((resolve) => {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const problem = await tryJoin(field, form.querySelector("input").value.trim());
      if (problem) {
        errorLine.textContent = problem;
      } else {
        form.hidden = true;
        resolve();
      }
    });
  });
}

// "dog 0.93": a verdict in words and a number, never by colour alone.
export function verdictText(model, verdict) {
  const animal = verdict.label === "dog" ? "🐶 DOG" : "🐱 CAT";
  return `${model}: ${animal}  p(dog) ${verdict.p_dog.toFixed(2)}`;
}

export function agreementText(agree) {
  return agree ? "✔ both models agree" : "✘ the models disagree";
}
