// tokenward console: copy buttons, the only script. Every page works without it.
"use strict";
document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  const field = document.getElementById(button.dataset.copy);
  const status = document.getElementById("copy-status");
  try {
    await navigator.clipboard.writeText(field.value);
    if (status) status.textContent = "Copied to the clipboard.";
  } catch (error) {
    field.select();
    if (status) status.textContent = "Selected: press Ctrl+C (or Cmd+C) to copy.";
  }
});
