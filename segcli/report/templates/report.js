(function () {
  "use strict";
  var cards = Array.prototype.slice.call(document.querySelectorAll("article.card"));
  var buttons = Array.prototype.slice.call(document.querySelectorAll("button[data-code]"));
  var search = document.getElementById("search");
  var shown = document.getElementById("shown");
  var active = {};
  function update() {
    var wanted = Object.keys(active);
    var text = search ? search.value.trim().toLowerCase() : "";
    var count = 0;
    cards.forEach(function (card) {
      var codes = card.getAttribute("data-codes").split(" ");
      var byCode = wanted.length === 0 || codes.some(function (c) { return active[c] === true; });
      var byRef = text === "" || card.getAttribute("data-ref").toLowerCase().indexOf(text) !== -1;
      card.hidden = !(byCode && byRef);
      if (!card.hidden) { count += 1; }
    });
    if (shown) { shown.textContent = String(count); }
  }
  buttons.forEach(function (button) {
    button.addEventListener("click", function () {
      var code = button.getAttribute("data-code");
      if (active[code]) { delete active[code]; } else { active[code] = true; }
      button.setAttribute("aria-pressed", active[code] ? "true" : "false");
      update();
    });
  });
  if (search) { search.addEventListener("input", update); }
  update();
}());
