package dev.liteship.demo;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.tensorflow.lite.schema.Model;
import org.tensorflow.lite.schema.SignatureDef;
import org.tensorflow.lite.schema.TensorMap;

/** Reads signature 0 with the TFLite schema classes that ship with litert-metadata. */
final class SignatureReader {
    private SignatureReader() {}

    static ModelSignature read(ByteBuffer model) throws ProtocolException {
        ByteBuffer b = model.duplicate().order(ByteOrder.LITTLE_ENDIAN);
        b.rewind();
        Model m = Model.getRootAsModel(b);
        if (m.signatureDefsLength() < 1) {
            throw new ProtocolException("the model has no signature; CompiledModel names its inputs and outputs by "
                    + "signature (convert with the TFLite converter from a SavedModel, as liteship does)");
        }
        SignatureDef sig = m.signatureDefs(0);
        if (sig.inputsLength() != 1) {
            throw new ProtocolException("signature '" + sig.signatureKey() + "' has " + sig.inputsLength()
                    + " inputs; an SSD detector has one image input");
        }
        String[] names = new String[sig.outputsLength()];
        int[] tensors = new int[sig.outputsLength()];
        for (int k = 0; k < names.length; k++) {
            TensorMap t = sig.outputs(k);
            names[k] = t.name();
            tensors[k] = (int) t.tensorIndex();
        }
        return new ModelSignature(sig.signatureKey(), sig.inputs(0).name(), names, tensors);
    }
}
