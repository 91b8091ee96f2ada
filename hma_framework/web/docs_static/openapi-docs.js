// Renders /openapi.json as a list of operations. Served as a file, never inline, so the page
// works under a Content-Security-Policy of script-src 'self'. Text goes in with textContent
// only: nothing from the document is parsed as HTML.
"use strict";

function el(tag, attrs, children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
  for (const child of children || []) {
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

function resolve(spec, schema) {
  if (schema && schema.$ref) {
    return spec.components.schemas[schema.$ref.split("/").pop()];
  }
  return schema;
}

function schemaBlock(spec, schema) {
  return el("pre", {}, [JSON.stringify(resolve(spec, schema), null, 2)]);
}

function contentBlocks(spec, content) {
  const blocks = [];
  for (const [mediaType, media] of Object.entries(content || {})) {
    blocks.push(el("div", {}, [el("em", {}, [mediaType])]));
    if (media.schema && Object.keys(media.schema).length) blocks.push(schemaBlock(spec, media.schema));
  }
  return blocks;
}

function operationView(spec, path, method, op) {
  const body = el("div", { class: "body" });
  if (op.parameters && op.parameters.length) {
    body.append(el("h4", {}, ["Parameters"]));
    const list = el("ul");
    for (const p of op.parameters) {
      list.append(el("li", {}, [el("code", {}, [p.name]), ` (${p.in}): ${JSON.stringify(p.schema)}`]));
    }
    body.append(list);
  }
  if (op.requestBody) {
    body.append(el("h4", {}, ["Request body"]), ...contentBlocks(spec, op.requestBody.content));
  }
  body.append(el("h4", {}, ["Responses"]));
  for (const [status, response] of Object.entries(op.responses)) {
    body.append(el("div", {}, [el("strong", {}, [status]), " " + response.description]));
    body.append(...contentBlocks(spec, response.content));
  }
  const scope = op["x-scope"] === "public" ? "no key" : `scope: ${op["x-scope"]}`;
  const summary = el("summary", {}, [
    el("span", { class: `method ${method}` }, [method.toUpperCase()]),
    path + "  ",
    el("span", {}, [op.summary || ""]),
    el("span", { class: "scope" }, [scope]),
  ]);
  const details = el("details", { class: "op" }, [summary, body]);
  details.dataset.search = `${method} ${path} ${scope} ${op.summary || ""}`.toLowerCase();
  return details;
}

function render(spec) {
  const main = document.getElementById("operations");
  main.textContent = "";
  document.getElementById("title").textContent = `${spec.info.title} ${spec.info.version} API reference`;
  const groups = new Map();
  for (const [path, methods] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const tag = (op.tags && op.tags[0]) || "other";
      if (!groups.has(tag)) groups.set(tag, []);
      groups.get(tag).push(operationView(spec, path, method, op));
    }
  }
  for (const [tag, views] of groups) {
    main.append(el("section", { "data-tag": tag }, [el("h2", {}, [tag]), ...views]));
  }
  document.getElementById("filter").addEventListener("input", (event) => {
    const words = event.target.value.toLowerCase().split(/\s+/).filter(Boolean);
    for (const op of main.querySelectorAll("details.op")) {
      op.classList.toggle("hidden", !words.every((w) => op.dataset.search.includes(w)));
    }
  });
}

fetch("/openapi.json")
  .then((response) => {
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    return response.json();
  })
  .then(render)
  .catch((error) => {
    document.getElementById("loading").textContent = `Could not load /openapi.json: ${error}`;
  });
