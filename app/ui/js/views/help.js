// How to get a key, and what the dashboard shows.

import { h } from "../dom.js";
import { card, pageHeader } from "../ui.js";

export const KEY_COMMAND = "backprop keys create NAME";

export async function helpPage(main) {
  main.append(
    pageHeader("Help", "Keys, the command line, and what this dashboard shows."),
    h(
      "div",
      { class: "grid-2" },
      card(
        "API keys",
        h("p", {}, "The dashboard calls the same public /v1 API as any client, with a key of yours. Keys are made on the server:"),
        h("pre", { class: "command-block" }, h("code", {}, `${KEY_COMMAND}        # prints the new key once\nbackprop keys list\nbackprop keys revoke NAME`)),
        h("p", {}, "The key is kept in this browser's localStorage only; ", h("strong", {}, "Change key"), " at the top forgets it."),
        h("p", {}, h("a", { href: "#/" }, "Back to the dashboard")),
      ),
      card(
        "A first network, step by step",
        h(
          "ol",
          { class: "steps" },
          h("li", {}, h("a", { href: "#/datasets" }, "Datasets"), ": generate a toy set (moons, circles, spirals…) or upload a CSV."),
          h("li", {}, h("a", { href: "#/networks" }, "Networks"), ": define the layers; the preview draws them."),
          h("li", {}, h("a", { href: "#/jobs" }, "Jobs"), ": train the network on the dataset and watch the loss and accuracy curves grow."),
          h("li", {}, h("a", { href: "#/models" }, "Models"), ": see the trained weights and the decision surface, and predict."),
        ),
      ),
    ),
  );
}
