// Attendwise page behaviour: starts GOV.UK Frontend and MOJ Frontend components, and makes
// every htmx request carry the CSRF token. Loaded as an ES module, so browsers that cannot run
// the components get the plain server-rendered pages.
import * as GOVUKFrontend from "../vendor/govuk-frontend/govuk-frontend.min.js";
import * as MOJFrontend from "../vendor/moj/moj-frontend.min.js";

function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.getAttribute("content") : null;
}

function initComponents(scope) {
  GOVUKFrontend.initAll({ scope });
  MOJFrontend.initAll({ scope });
}

document.body.addEventListener("htmx:configRequest", (event) => {
  const token = csrfToken();
  if (token) {
    event.detail.headers["X-CSRFToken"] = token;
  }
});

// Content swapped in by htmx gets its components started too.
document.body.addEventListener("htmx:afterSettle", (event) => {
  if (event.target instanceof Element) {
    initComponents(event.target);
  }
});

initComponents(document);
