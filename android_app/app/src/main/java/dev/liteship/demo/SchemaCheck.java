package dev.liteship.demo;

import java.util.ArrayList;
import java.util.List;
import org.json.JSONArray;
import org.json.JSONException;
import org.json.JSONObject;

/**
 * Checks that the protocol schema packaged with the app (the asset built from
 * liteship/device/schema/) still says what this code implements: schema names, version and the
 * enumerations the app writes. A schema edit that the app does not follow becomes a request error
 * that says so, instead of results the host rejects later.
 */
public final class SchemaCheck {
    private SchemaCheck() {}

    /** Empty when the schema matches this app; otherwise one line per mismatch. */
    public static List<String> problems(String schemaText) {
        List<String> out = new ArrayList<>();
        try {
            JSONObject defs = new JSONObject(schemaText).getJSONObject("$defs");
            JSONObject req = defs.getJSONObject("request").getJSONObject("properties");
            JSONObject res = defs.getJSONObject("result").getJSONObject("properties");
            same(out, "request schema", req.getJSONObject("schema").opt("const"), Protocol.REQUEST_SCHEMA);
            same(out, "result schema", res.getJSONObject("schema").opt("const"), Protocol.RESULT_SCHEMA);
            same(out, "request version", req.getJSONObject("version").opt("const"), Protocol.VERSION);
            same(out, "result version", res.getJSONObject("version").opt("const"), Protocol.VERSION);
            sameEnum(out, "delegate", defs.getJSONObject("delegate").getJSONArray("enum"), Protocol.DELEGATES);
            sameEnum(out, "dtype", defs.getJSONObject("dtype").getJSONArray("enum"), Protocol.DTYPES);
            sameEnum(out, "error stage", defs.getJSONObject("error").getJSONObject("properties")
                    .getJSONObject("stage").getJSONArray("enum"), Protocol.ERROR_STAGES);
            sameEnum(out, "engine", defs.getJSONObject("engine").getJSONArray("enum"), Protocol.ENGINES);
            sameEnum(out, "accelerator used", defs.getJSONObject("accelerator").getJSONArray("enum"),
                    Protocol.ACCELERATORS_USED);
            JSONArray perEngine = defs.getJSONObject("engine_run").getJSONArray("allOf");
            for (int i = 0; i < perEngine.length(); i++) {
                JSONObject rule = perEngine.getJSONObject(i);
                String engine = String.valueOf(rule.getJSONObject("if").getJSONObject("properties")
                        .getJSONObject("engine").opt("const"));
                String[] mine = Protocol.acceleratorsOf(engine);
                JSONArray theirs = rule.getJSONObject("then").getJSONObject("properties").getJSONObject("accelerators")
                        .getJSONObject("items").getJSONArray("enum");
                if (mine == null) {
                    out.add("engine_run: the schema restricts an engine this app does not know: " + engine);
                } else {
                    sameEnum(out, engine + " accelerators", theirs, mine);
                }
            }
            sameEnum(out, "delegate status", defs.getJSONObject("delegate_result").getJSONObject("properties")
                    .getJSONObject("status").getJSONArray("enum"), new String[] {"ok", "error", "unavailable"});
            JSONArray kinds = res.getJSONObject("producer").getJSONObject("properties")
                    .getJSONObject("kind").getJSONArray("enum");
            boolean device = false;
            for (int i = 0; i < kinds.length(); i++) {
                device |= "device".equals(kinds.opt(i));
            }
            if (!device) {
                out.add("producer.kind no longer allows 'device'");
            }
        } catch (JSONException e) {
            out.add("the schema asset is not the expected JSON: " + e.getMessage());
        }
        return out;
    }

    private static void same(List<String> out, String what, Object found, Object expected) {
        boolean equal = found instanceof Number && expected instanceof Number
                ? ((Number) found).longValue() == ((Number) expected).longValue()
                : expected.equals(found);
        if (!equal) {
            out.add(what + ": schema says " + found + ", app implements " + expected);
        }
    }

    private static void sameEnum(List<String> out, String what, JSONArray found, String[] expected) {
        List<String> values = new ArrayList<>();
        for (int i = 0; i < found.length(); i++) {
            values.add(String.valueOf(found.opt(i)));
        }
        List<String> mine = java.util.Arrays.asList(expected);
        if (!values.containsAll(mine) || !mine.containsAll(values)) {
            out.add(what + " values: schema says " + values + ", app implements " + mine);
        }
    }
}
