plugins {
    id("com.android.application")
}

// LiteRT 2.x: CompiledModel (com.google.ai.edge.litert) and the CPU-only Interpreter in one artifact;
// MediaPipe Tasks brings its own native runtime. litert-metadata (a plain jar: MetadataExtractor and the
// TFLite schema classes) has no 2.x release and does not depend on the runtime.
val litertVersion = "2.3.0"
val litertMetadataVersion = "1.4.0"
val mediapipeVersion = "1.0.0"
val cameraxVersion = "1.4.2"

// The protocol schema is the ONE file in liteship/device/schema/ (shared with the Python side);
// it is packaged as an asset from there, never copied into this project.
val protocolSchemaDir = file("../../liteship/device/schema")

// The model the camera screen runs: assets/model.tflite. By default the build packages what
// `liteship run` wrote (liteship-out/models/int8.tflite at the repository root); choose another with
// -PliteshipModel=/path/to/model.tflite, or put a file at app/src/main/assets/model.tflite (that wins).
val liteshipModel = file(
    providers.gradleProperty("liteshipModel").getOrElse("../../liteship-out/models/int8.tflite")
)
val manualModel = file("src/main/assets/model.tflite")

/** Copies the liteship model into a generated assets folder (nothing when absent or overridden). */
abstract class CopyLiteshipModel : DefaultTask() {
    @get:InputFiles
    @get:PathSensitive(PathSensitivity.NONE)
    abstract val model: ConfigurableFileCollection

    @get:Input
    abstract val skip: Property<Boolean>

    @get:OutputDirectory
    abstract val outputDir: DirectoryProperty

    @TaskAction
    fun copy() {
        val out = outputDir.get().asFile
        out.deleteRecursively()
        out.mkdirs()
        val source = model.files.firstOrNull { it.isFile }
        if (skip.get()) {
            logger.lifecycle("liteship: using app/src/main/assets/model.tflite")
        } else if (source != null) {
            source.copyTo(File(out, "model.tflite"), overwrite = true)
            logger.lifecycle("liteship: packaging $source as assets/model.tflite")
        } else {
            logger.warn("liteship: no model found (run `liteship run` first); the camera screen will say so")
        }
    }
}

androidComponents {
    onVariants { variant ->
        val name = variant.name.replaceFirstChar { it.uppercase() }
        val copy = tasks.register<CopyLiteshipModel>("copy${name}LiteshipModel") {
            model.from(liteshipModel)
            skip.set(manualModel.exists())
        }
        variant.sources.assets?.addGeneratedSourceDirectory(copy, CopyLiteshipModel::outputDir)
    }
}

android {
    namespace = "dev.liteship.demo"
    compileSdk = 35

    defaultConfig {
        applicationId = "dev.liteship.demo"
        minSdk = 24
        targetSdk = 35
        versionCode = 1
        versionName = "0.1.0"
        buildConfigField("String", "LITERT_VERSION", "\"$litertVersion\"")
        buildConfigField("String", "MEDIAPIPE_VERSION", "\"$mediapipeVersion\"")
    }

    buildFeatures {
        buildConfig = true
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }

    sourceSets {
        getByName("main") {
            assets.srcDirs("src/main/assets", protocolSchemaDir)
        }
    }

    androidResources {
        // models stay uncompressed in the APK so they can be memory-mapped (`liteship apk` checks it)
        noCompress += "tflite"
    }

    packaging {
        jniLibs {
            // native libraries stored uncompressed and 16 KB zip-aligned (AGP >= 8.5.1), as Google Play
            // requires for targetSdk 35 on 16 KB page devices; `liteship apk` checks the built APK
            useLegacyPackaging = false
        }
    }

    buildTypes {
        release {
            isMinifyEnabled = false
        }
    }
}

dependencies {
    // LiteRT 2.x: CompiledModel (CPU/GPU) + Interpreter (CPU); the metadata reader; MediaPipe Tasks.
    implementation("com.google.ai.edge.litert:litert:$litertVersion")
    implementation("com.google.ai.edge.litert:litert-metadata:$litertMetadataVersion")
    implementation("com.google.mediapipe:tasks-vision:$mediapipeVersion")

    implementation("androidx.activity:activity:1.9.3")
    implementation("androidx.core:core:1.15.0")
    implementation("androidx.camera:camera-core:$cameraxVersion")
    implementation("androidx.camera:camera-camera2:$cameraxVersion")
    implementation("androidx.camera:camera-lifecycle:$cameraxVersion")
    implementation("androidx.camera:camera-view:$cameraxVersion")
}
