// crm dashboard: the project's own script, no libraries.
// Definitions open on click or Enter as well as on hover/focus, and close on Escape.
"use strict";
document.addEventListener("click", (event) => {
  const button = event.target.closest("button.info");
  if (!button) return;
  const def = document.getElementById(button.getAttribute("aria-describedby"));
  if (def) def.classList.toggle("open");
});
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape") return;
  document.querySelectorAll(".def.open").forEach((d) => d.classList.remove("open"));
});
