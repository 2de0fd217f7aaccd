// Precise Edit: a token view under every word input (words, blend_words, word_weights, word_cross_replace, the
// identity trainer's subject nouns). It shows the connected prompt's words as chips, tokenized on the server with
// the tokenizer the node uses (POST /precise_edit/tokens); clicking a chip adds the word to the input, and a word
// that is not in the prompt is marked before the graph is queued. Plain DOM widget: the classic canvas and the Vue
// node renderer ("Nodes 2.0") both show it.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const ROUTE = "/precise_edit/tokens";
const POLL_MS = 600;

// syntax: "list" (comma-separated words), "keyed" ("word: value" entries) or "single" (one noun).
// prompts: the prompt inputs the words are looked up in; a word is missing when no prompt has it.
// template: what a chip click appends.
export const WORD_INPUTS = {
  PreciseEdit_AttentionMaskInjector: [{ input: "words", prompts: ["text"], syntax: "list" }],
  PreciseEdit_CaptureCrossAttention: [{ input: "words", prompts: ["text"], syntax: "list" }],
  PreciseEdit_PromptToPromptEdit: [
    { input: "word_weights", prompts: ["target_text"], syntax: "keyed", template: (w) => `${w}:2.0` },
    { input: "word_cross_replace", prompts: ["target_text"], syntax: "keyed", template: (w) => `${w}: 0.4` },
    { input: "blend_words", prompts: ["source_text", "target_text"], syntax: "list" },
  ],
  PreciseEdit_IdentityTokenTrainer: [
    { input: "subject", prompts: ["prompt"], syntax: "single" },
    { input: "reference_subject", prompts: ["reference_prompt"], syntax: "single" },
  ],
};

const STYLE = `
.pe-token-view { font: 12px sans-serif; color: var(--input-text, #ddd); overflow-y: auto; padding: 2px 4px;
  box-sizing: border-box; width: 100%; height: 100%; }
.pe-token-row { margin: 2px 0; line-height: 20px; }
.pe-token-label { opacity: 0.7; margin-right: 4px; }
.pe-chip { display: inline-block; margin: 1px 2px; padding: 0 6px; border-radius: 9px; cursor: pointer;
  border: 1px solid #5a7ab0; background: #2a3a55; color: #dde; font-size: 11px; line-height: 16px; }
.pe-chip:hover { background: #3b5280; }
.pe-chip.pe-chosen { background: #3d6b3d; border-color: #6a6; }
.pe-chip.pe-embedding { cursor: default; font-style: italic; opacity: 0.8; }
.pe-target select { font-size: 11px; background: #222; color: #ddd; border: 1px solid #555; }
.pe-missing-line { color: #ff8080; }
.pe-missing { display: inline-block; margin: 1px 2px; padding: 0 6px; border-radius: 9px; font-size: 11px;
  border: 1px solid #c44; background: #552222; text-decoration: line-through wavy #f66; }
.pe-note { opacity: 0.6; font-style: italic; }
`;

function addStyle() {
  if (document.getElementById("pe-token-view-style")) return;
  const style = document.createElement("style");
  style.id = "pe-token-view-style";
  style.textContent = STYLE;
  document.head.append(style);
}

/** The words an input names: "a, red hat" → ["a", "red hat"]; "smile:2.0, hat: 0.4" → ["smile", "hat"]. */
export function parseWords(text, syntax) {
  const value = typeof text === "string" ? text : "";
  if (syntax === "single") return value.trim() ? [value.trim()] : [];
  const entries = value.split(",").map((part) => part.trim()).filter(Boolean);
  if (syntax === "list") return entries;
  return entries
    .map((entry) => {
      const colon = entry.lastIndexOf(":");
      return colon < 0 ? entry : entry.slice(0, colon).trim();
    })
    .filter(Boolean);
}

function widgetNamed(node, name) {
  return node.widgets?.find((w) => w.name === name);
}

/** The text feeding the input ``name``: its widget, or the widget of the node linked to it (a primitive, a text
 * node). null when it comes from a node whose output is known only when the graph runs. */
function promptText(node, name) {
  const slot = node.inputs?.findIndex((input) => input.name === name) ?? -1;
  if (slot >= 0 && node.inputs[slot].link != null) {
    const source = node.getInputNode?.(slot);
    if (!source?.widgets) return null;
    const named = source.widgets.find((w) => ["value", "text", "string", "prompt"].includes(w.name));
    const widget = named ?? source.widgets.find((w) => typeof w.value === "string");
    return typeof widget?.value === "string" ? widget.value : null;
  }
  const widget = widgetNamed(node, name);
  return typeof widget?.value === "string" ? widget.value : null;
}

/** The tokenizer family of the CLIP linked to the node, from the loader's model name (the CLIP-L/H/G tokenizers
 * share one vocabulary, so the words' positions agree whichever is guessed). */
function clipFamily(node) {
  const slot = node.inputs?.findIndex((input) => input.name === "clip") ?? -1;
  const loader = slot >= 0 ? node.getInputNode?.(slot) : null;
  const names = (loader?.widgets ?? []).map((w) => String(w.value ?? "")).join(" ");
  if (/xl/i.test(names)) return "sdxl";
  if (/(^|[^a-z])(v2|sd2|2[-_.]?[01]|unclip)/i.test(names)) return "sd2";
  return "sd1";
}

async function fetchTokens(text, family, words) {
  const response = await api.fetchApi(ROUTE, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ text, family, words }),
  });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error ?? `HTTP ${response.status}`);
  return body;
}

function setWidgetValue(node, widget, value) {
  widget.value = value;
  widget.callback?.(value, app.canvas, node);
  node.onWidgetChanged?.(widget.name, value, undefined, widget);
  node.setDirtyCanvas?.(true, true);
  node.graph?.setDirtyCanvas?.(true, true);
}

function addWord(node, spec, word) {
  const widget = widgetNamed(node, spec.input);
  if (!widget) return;
  const current = typeof widget.value === "string" ? widget.value.trim() : "";
  if (parseWords(current, spec.syntax).includes(word)) return;
  const entry = spec.template ? spec.template(word) : word;
  const value = spec.syntax === "single" || !current ? entry : `${current.replace(/,\s*$/, "")}, ${entry}`;
  setWidgetValue(node, widget, value);
}

function chip(text, className, title) {
  const element = document.createElement("span");
  element.className = className;
  element.textContent = text;
  if (title) element.title = title;
  return element;
}

/** One node's view: a chip row per prompt, the input a click writes to, and the missing words of each input. */
class TokenView {
  constructor(node, specs) {
    this.node = node;
    this.specs = specs;
    this.active = specs[0];
    this.signature = "";
    this.answers = {};
    this.element = document.createElement("div");
    this.element.className = "pe-token-view";
    for (const type of ["pointerdown", "mousedown", "wheel"]) {
      this.element.addEventListener(type, (event) => event.stopPropagation());
    }
  }

  /** The prompts, family and words the view currently depends on, as one comparable string. */
  state() {
    const prompts = {};
    for (const spec of this.specs) for (const name of spec.prompts) prompts[name] = promptText(this.node, name);
    const words = Object.fromEntries(
      this.specs.map((spec) => [spec.input, parseWords(widgetNamed(this.node, spec.input)?.value, spec.syntax)]),
    );
    return { prompts, words, family: clipFamily(this.node) };
  }

  async refresh() {
    const state = this.state();
    const signature = JSON.stringify(state);
    if (signature === this.signature) return;
    this.signature = signature;
    const answers = {};
    try {
      for (const [name, text] of Object.entries(state.prompts)) {
        if (text === null) continue;
        const words = this.specs
          .filter((spec) => spec.prompts.includes(name))
          .flatMap((spec) => state.words[spec.input]);
        answers[name] = await fetchTokens(text, state.family, [...new Set(words)]);
      }
      this.error = null;
    } catch (error) {
      this.error = String(error.message ?? error);
    }
    if (signature !== this.signature) return;
    this.answers = answers;
    this.state_ = state;
    this.render();
  }

  /** Words of each input found in none of its prompts (an unknown prompt hides nothing). */
  missingWords() {
    const missing = {};
    for (const spec of this.specs) {
      const known = spec.prompts.filter((name) => this.answers[name]);
      if (!known.length || known.length < spec.prompts.length) continue;
      const words = this.state_?.words[spec.input] ?? [];
      const absent = words.filter((word) => known.every((name) => this.answers[name].missing.includes(word)));
      if (absent.length) missing[spec.input] = absent;
    }
    return missing;
  }

  render() {
    const root = this.element;
    root.dataset.nodeId = String(this.node.id);
    root.replaceChildren();
    if (this.specs.length > 1) {
      const row = document.createElement("div");
      row.className = "pe-token-row pe-target";
      row.append(chip("click adds to", "pe-token-label"));
      const select = document.createElement("select");
      for (const spec of this.specs) select.append(new Option(spec.input, spec.input, false, spec === this.active));
      select.addEventListener("change", () => {
        this.active = this.specs.find((spec) => spec.input === select.value);
        this.render();
      });
      row.append(select);
      root.append(row);
    }
    const chosen = new Set(this.state_?.words[this.active.input] ?? []);
    const prompts = [...new Set(this.specs.flatMap((spec) => spec.prompts))];
    for (const name of prompts) {
      const row = document.createElement("div");
      row.className = "pe-token-row";
      row.dataset.prompt = name;
      row.append(chip(`${name}:`, "pe-token-label"));
      const answer = this.answers[name];
      if (!answer) {
        row.append(chip(this.error ?? "known when the graph runs (linked from another node)", "pe-note"));
      } else if (!answer.words.length) {
        row.append(chip("(empty prompt)", "pe-note"));
      }
      for (const word of answer?.words ?? []) {
        if (word.text === null) {
          row.append(chip("embedding", "pe-chip pe-embedding", `token ${word.positions.join(", ")}`));
          continue;
        }
        const element = chip(word.text, chosen.has(word.text) ? "pe-chip pe-chosen" : "pe-chip");
        element.title = `tokens ${word.positions.join(", ")}: click to add to ${this.active.input}`;
        element.dataset.word = word.text;
        element.addEventListener("click", () => {
          if (this.active.prompts.includes(name)) addWord(this.node, this.active, word.text);
          this.refresh();
        });
        row.append(element);
      }
      root.append(row);
    }
    for (const [input, words] of Object.entries(this.missingWords())) {
      const row = document.createElement("div");
      row.className = "pe-token-row pe-missing-line";
      row.dataset.input = input;
      const where = this.specs.find((spec) => spec.input === input).prompts.join(" or ");
      row.append(chip(`${input}: not in ${where}:`, "pe-token-label"));
      for (const word of words) row.append(chip(word, "pe-missing", `'${word}' is not in the prompt`));
      root.append(row);
    }
  }
}

const views = new Set();

function attachTokenView(node, specs) {
  addStyle();
  const view = new TokenView(node, specs);
  const widget = node.addDOMWidget("pe_token_view", "pe-token-view", view.element, {
    serialize: false,
    hideOnZoom: false,
    getValue: () => undefined,
    setValue: () => {},
    getMinHeight: () => 56 + 22 * specs.length,
    getMaxHeight: () => 200,
  });
  widget.serialize = false;
  views.add(view);
  node.peTokenView = view;
  const onRemoved = node.onRemoved;
  node.onRemoved = function () {
    views.delete(view);
    return onRemoved?.apply(this, arguments);
  };
  view.refresh();
}

/** Every view's missing words, for a warning when the graph is queued. */
function missingReport() {
  const lines = [];
  for (const view of views) {
    for (const [input, words] of Object.entries(view.missingWords())) {
      lines.push(`${view.node.title} (#${view.node.id}) ${input}: ${words.map((w) => `'${w}'`).join(", ")}`);
    }
  }
  return lines;
}

app.registerExtension({
  name: "PreciseEdit.TokenView",
  async setup() {
    setInterval(() => {
      for (const view of views) {
        if (!view.node.graph) views.delete(view);
        else view.refresh();
      }
    }, POLL_MS);
    api.addEventListener("promptQueued", () => {
      const lines = missingReport();
      if (lines.length && app.extensionManager?.toast) {
        app.extensionManager.toast.add({
          severity: "warn",
          summary: "Precise Edit: words not in the prompt",
          detail: lines.join("\n"),
          life: 8000,
        });
      }
    });
  },
  nodeCreated(node) {
    const specs = WORD_INPUTS[node.comfyClass ?? node.type];
    if (specs) attachTokenView(node, specs);
  },
});
