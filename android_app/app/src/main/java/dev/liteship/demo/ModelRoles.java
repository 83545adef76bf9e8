package dev.liteship.demo;

import java.util.ArrayList;
import java.util.List;

/**
 * Which output tensor plays which detection role, read from the metadata output names the Task
 * Library uses ({@code location}, {@code category}, {@code score}, {@code number of detections}).
 * Positions are never assumed: TF2 exports emit scores, boxes, count, classes; TF1 exports boxes,
 * classes, scores, count, and both work when the metadata names them.
 */
public final class ModelRoles {
    public static final String LOCATION = "location";
    public static final String CATEGORY = "category";
    public static final String SCORE = "score";
    public static final String COUNT = "number of detections";

    /** Output position of each role, -1 when no output carries that name. */
    public final int location;
    public final int category;
    public final int score;
    public final int count;
    private final String problem;

    private ModelRoles(int location, int category, int score, int count, String problem) {
        this.location = location;
        this.category = category;
        this.score = score;
        this.count = count;
        this.problem = problem;
    }

    /** Maps roles from the metadata names of the outputs (tensor order; null = unnamed). */
    public static ModelRoles fromNames(List<String> outputNames) {
        int[] pos = {-1, -1, -1, -1};
        String[] roles = {LOCATION, CATEGORY, SCORE, COUNT};
        List<String> duplicates = new ArrayList<>();
        for (int i = 0; i < outputNames.size(); i++) {
            String name = outputNames.get(i);
            for (int r = 0; r < roles.length; r++) {
                if (roles[r].equals(name)) {
                    if (pos[r] >= 0) {
                        duplicates.add(name);
                    }
                    pos[r] = i;
                }
            }
        }
        List<String> missing = new ArrayList<>();
        for (int r = 0; r < 3; r++) {   // the count output is optional
            if (pos[r] < 0) {
                missing.add(roles[r]);
            }
        }
        String problem = null;
        if (!duplicates.isEmpty()) {
            problem = "the metadata names more than one output " + quoted(duplicates)
                    + "; each role must name exactly one output";
        } else if (!missing.isEmpty()) {
            problem = "no output is named " + quoted(missing) + " in the model metadata (output names: "
                    + quotedAll(outputNames) + "); write the detector metadata with `liteship metadata` "
                    + "(names location, category, score, number of detections)";
        }
        return new ModelRoles(pos[0], pos[1], pos[2], pos[3], problem);
    }

    /** True when location, category and score are all named (number of detections is optional). */
    public boolean isComplete() {
        return problem == null;
    }

    /** Why the roles are incomplete, or null. */
    public String problem() {
        return problem;
    }

    /**
     * Role of every output in tensor order, as the result's model.output_roles reports it: the
     * metadata name when it is one of the four role names, "" otherwise (unnamed or another name).
     */
    public static List<String> describe(List<String> outputNames, int outputCount) {
        List<String> out = new ArrayList<>();
        for (int i = 0; i < outputCount; i++) {
            String name = i < outputNames.size() ? outputNames.get(i) : null;
            boolean role = LOCATION.equals(name) || CATEGORY.equals(name) || SCORE.equals(name) || COUNT.equals(name);
            out.add(role ? name : "");
        }
        return out;
    }

    private static String quoted(List<String> names) {
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < names.size(); i++) {
            b.append(i == 0 ? "" : i == names.size() - 1 ? " or " : ", ").append('\'').append(names.get(i)).append('\'');
        }
        return b.toString();
    }

    private static String quotedAll(List<String> names) {
        StringBuilder b = new StringBuilder("[");
        for (int i = 0; i < names.size(); i++) {
            b.append(i == 0 ? "" : ", ").append(names.get(i) == null ? "none" : "'" + names.get(i) + "'");
        }
        return b.append(']').toString();
    }
}
