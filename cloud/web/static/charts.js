// The dashboard's charts: the data comes from the page (a JSON script block, id "chart-data",
// built by cloud/web/charts.py), the drawing from the vendored ECharts (static/vendor/echarts).
// Every element with data-chart="<id>" gets the chart of that id: hours oldest first, China time,
// labels at least 12 px, values on hover. Tooltips are drawn on the canvas ("richText"), so the
// page's Content-Security-Policy needs no inline styles. No framework.
(function () {
  var block = document.getElementById("chart-data");
  if (!block || !window.echarts) { return; }
  var specs = JSON.parse(block.textContent);
  var palette = ["#2f6f6a", "#d08a2e", "#3b6fb6", "#a04e8f"];
  var font = { fontSize: 13, color: "#33413e" };

  function hour(label) {  // "12-07 03:00": the hour, and the date at midnight
    var hm = label.slice(6);
    return hm === "00:00" ? label.slice(0, 5) : hm;
  }

  specs.forEach(function (spec) {
    var el = document.querySelector('[data-chart="' + spec.id + '"]');
    if (!el) { return; }
    el.textContent = "";
    var chart = window.echarts.init(el, null, { renderer: "canvas" });
    chart.setOption({
      color: palette,
      textStyle: font,
      animation: false,
      grid: { left: 12, right: 24, top: 76, bottom: 8, containLabel: true },  // room for a two-row legend
      legend: { top: 0, left: 0, textStyle: font, itemWidth: 18, itemHeight: 10 },
      tooltip: { trigger: "axis", renderMode: "richText", textStyle: font,
                 valueFormatter: function (v) { return v === null || v === undefined ? "-" : String(v); } },
      xAxis: { type: "category", boundaryGap: false, data: spec.labels,
               axisLabel: { fontSize: 12, color: font.color, formatter: hour, hideOverlap: true } },
      yAxis: { type: "value", name: spec.unit, minInterval: spec.unit === "%" ? 0 : 1,
               nameTextStyle: { fontSize: 12, color: font.color, align: "left" },
               axisLabel: { fontSize: 12, color: font.color } },
      series: spec.series.map(function (s) {
        return { name: s.name, type: "line", data: s.data, showSymbol: false, symbolSize: 6,
                 connectNulls: false, lineStyle: { width: 2 }, emphasis: { focus: "series" } };
      })
    });
    window.addEventListener("resize", function () { chart.resize(); });
  });
})();
