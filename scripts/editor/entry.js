// The template editor of Notifier's admin: CodeMirror 6 over each <textarea data-editor="…">
// (html, json or text). The textarea stays in the form, hidden, and is kept in step with the
// editor, so the form posts it and the live preview (htmx) reads it as before. Template tags
// ({{ … }}, {% … %}, {# … #}) are highlighted in every language.
//
// Built into static/notifier/vendor/template-editor.js by build.mjs (npm run build).
import { defaultKeymap, history, historyKeymap } from "@codemirror/commands";
import { html } from "@codemirror/lang-html";
import { json } from "@codemirror/lang-json";
import { defaultHighlightStyle, syntaxHighlighting } from "@codemirror/language";
import { highlightSelectionMatches, searchKeymap } from "@codemirror/search";
import { EditorState } from "@codemirror/state";
import {
  Decoration,
  drawSelection,
  EditorView,
  highlightActiveLine,
  keymap,
  lineNumbers,
  MatchDecorator,
  placeholder,
  ViewPlugin,
} from "@codemirror/view";

const templateTag = new MatchDecorator({
  regexp: /\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}/g,
  decoration: Decoration.mark({ class: "cm-template-tag" }),
});

const templateTags = ViewPlugin.fromClass(
  class {
    constructor(view) {
      this.decorations = templateTag.createDeco(view);
    }
    update(update) {
      this.decorations = templateTag.updateDeco(update, this.decorations);
    }
  },
  { decorations: (plugin) => plugin.decorations },
);

const languages = { html: () => [html()], json: () => [json()], text: () => [] };

function labelOf(textarea) {
  const label = textarea.id && document.querySelector(`label[for="${textarea.id}"]`);
  return (label && label.textContent.trim()) || textarea.name;
}

function attach(textarea) {
  if (textarea.dataset.editorAttached) return textarea.editorView;
  const language = languages[textarea.dataset.editor] || languages.text;
  const host = document.createElement("div");
  host.className = "notifier-editor";
  host.dataset.editorFor = textarea.name;
  textarea.after(host);
  const view = new EditorView({
    parent: host,
    state: EditorState.create({
      doc: textarea.value,
      extensions: [
        lineNumbers(),
        history(),
        drawSelection(),
        highlightActiveLine(),
        highlightSelectionMatches(),
        syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
        templateTags,
        EditorView.lineWrapping,
        keymap.of([...defaultKeymap, ...historyKeymap, ...searchKeymap]),
        placeholder(textarea.placeholder || ""),
        EditorView.contentAttributes.of({
          "aria-label": labelOf(textarea),
          "aria-multiline": "true",
          spellcheck: textarea.dataset.editor === "text" ? "true" : "false",
        }),
        EditorView.updateListener.of((update) => {
          if (!update.docChanged) return;
          textarea.value = update.state.doc.toString();
          // The form's listeners (the live preview, unsaved-changes warnings) hear it.
          textarea.dispatchEvent(new Event("input", { bubbles: true }));
        }),
        ...language(),
      ],
    }),
  });
  textarea.hidden = true;
  textarea.dataset.editorAttached = "true";
  textarea.editorView = view;
  return view;
}

function attachAll(root) {
  (root || document).querySelectorAll("textarea[data-editor]").forEach(attach);
}

window.NotifierEditor = { attach, attachAll };
if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", () => attachAll());
} else {
  attachAll();
}
document.addEventListener("htmx:load", (event) => attachAll(event.target));
