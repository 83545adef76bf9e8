package dev.liteship.demo;

import java.io.BufferedReader;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.ByteBuffer;
import java.nio.charset.Charset;
import java.util.ArrayList;
import java.util.List;
import org.tensorflow.lite.support.metadata.MetadataExtractor;
import org.tensorflow.lite.support.metadata.schema.AssociatedFile;
import org.tensorflow.lite.support.metadata.schema.AssociatedFileType;
import org.tensorflow.lite.support.metadata.schema.NormalizationOptions;
import org.tensorflow.lite.support.metadata.schema.ProcessUnit;
import org.tensorflow.lite.support.metadata.schema.ProcessUnitOptions;
import org.tensorflow.lite.support.metadata.schema.TensorMetadata;

/**
 * Reads what the app needs from the TFLite metadata with LiteRT's MetadataExtractor, the way the
 * Task Library's ObjectDetector does: output roles by tensor NAME, labels from the
 * TENSOR_VALUE_LABELS file of the category output, NormalizationOptions of input 0. For the "gpu"
 * variant's form (location + score, no postprocess op): the TENSOR_AXIS_LABELS of score and the
 * DETECTOR_METADATA ({@link DetectorMetadata}, read from the model bytes).
 */
public final class MetadataReader {
    private MetadataReader() {}

    public static ModelSpec read(ByteBuffer model) throws Exception {
        MetadataExtractor extractor = new MetadataExtractor(model.duplicate());
        if (!extractor.hasMetadata()) {
            return ModelSpec.withoutMetadata();
        }
        int outputs = extractor.getOutputTensorCount();
        List<String> names = new ArrayList<>();
        List<TensorMetadata> metas = new ArrayList<>();
        for (int i = 0; i < outputs; i++) {
            TensorMetadata m = extractor.getOutputTensorMetadata(i);
            metas.add(m);
            names.add(m == null ? null : m.name());
        }
        List<String> labels = new ArrayList<>();
        int category = names.indexOf(ModelRoles.CATEGORY);
        String labelFile = category >= 0 ? labelFile(metas.get(category)) : null;
        for (int i = 0; labelFile == null && i < metas.size(); i++) {
            labelFile = labelFile(metas.get(i));
        }
        // the gpu variant's form: no category output; its labels name the score tensor's columns
        // (TENSOR_AXIS_LABELS), and its DETECTOR_METADATA says how to decode the raw heads
        DetectorMetadata detector = category < 0 ? DetectorMetadata.fromModel(model) : null;
        int score = names.indexOf(ModelRoles.SCORE);
        if (labelFile == null && detector != null && score >= 0) {
            labelFile = labelFile(metas.get(score), AssociatedFileType.TENSOR_AXIS_LABELS);
        }
        if (labelFile != null) {
            labels = readLines(extractor.getAssociatedFile(labelFile));
        }
        float[] mean = null;
        float[] std = null;
        TensorMetadata input = extractor.getInputTensorCount() > 0 ? extractor.getInputTensorMetadata(0) : null;
        if (input != null) {
            for (int p = 0; p < input.processUnitsLength(); p++) {
                ProcessUnit unit = input.processUnits(p);
                if (unit != null && unit.optionsType() == ProcessUnitOptions.NormalizationOptions) {
                    NormalizationOptions n = (NormalizationOptions) unit.options(new NormalizationOptions());
                    if (n != null) {
                        mean = new float[n.meanLength()];
                        for (int c = 0; c < mean.length; c++) {
                            mean[c] = n.mean(c);
                        }
                        std = new float[n.stdLength()];
                        for (int c = 0; c < std.length; c++) {
                            std[c] = n.std(c);
                        }
                    }
                }
            }
        }
        return new ModelSpec(true, names, labels, mean, std, detector);
    }

    private static String labelFile(TensorMetadata m) {
        return labelFile(m, AssociatedFileType.TENSOR_VALUE_LABELS);
    }

    private static String labelFile(TensorMetadata m, byte type) {
        if (m == null) {
            return null;
        }
        for (int f = 0; f < m.associatedFilesLength(); f++) {
            AssociatedFile file = m.associatedFiles(f);
            if (file != null && file.type() == type) {
                return file.name();
            }
        }
        return null;
    }

    static List<String> readLines(InputStream in) throws java.io.IOException {
        List<String> lines = new ArrayList<>();
        BufferedReader reader = new BufferedReader(new InputStreamReader(in, Charset.forName("UTF-8")));
        try {
            String line;
            while ((line = reader.readLine()) != null) {
                lines.add(line);
            }
        } finally {
            reader.close();
        }
        while (!lines.isEmpty() && lines.get(lines.size() - 1).trim().isEmpty()) {
            lines.remove(lines.size() - 1);
        }
        return lines;
    }
}
