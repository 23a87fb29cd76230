// The translation unit that owns attnvision's precompiled torch header (cmake/Targets.cmake).
